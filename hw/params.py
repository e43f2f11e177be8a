"""Design parameters of the accelerator; one record feeds the RTL, the reference model and the
simulator so that the three cannot drift apart (docs/hw-spec.md, section 2)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil


@dataclass(frozen=True)
class AccelParams:
    n: int = 4                 # MAC array is n x n; vector words hold n lanes
    abuf_depth: int = 64
    wbuf_depth: int = 32
    obuf_depth: int = 32
    ne: int = 4                # experts
    rk: int = 2                # LoRA rank
    kt: int = 2                # LoRA input tiles (D_in = kt * n)
    nt: int = 2                # LoRA output tiles (D_out = nt * n)
    et: int = 2                # router embedding tiles (E = et * n)
    nslot: int = 2
    t_w: int = 4               # eNVM write cycles per word
    nl: int = 4                # DVFS levels
    lb: int = 2                # policy load bits
    sb: int = 2                # policy slack bits
    npb: int = 4               # length-predictor prompt buckets
    t_slew: int = 2
    t_settle: int = 3
    t_lock: int = 5
    qdepth: int = 4
    lut_n: int = 64
    lut_shift: int = 16

    def __post_init__(self) -> None:
        checks = [
            (self.n % 4 == 0 and self.n >= 4, "n must be a multiple of 4"),
            (1 <= self.ne <= 16, "1 <= ne <= 16"),
            (1 <= self.nslot <= 16, "1 <= nslot <= 16"),
            (2 <= self.nl <= 16, "2 <= nl <= 16"),
            (self.ne * self.npb <= 32, "ne * npb <= 32"),
            (self.lb + self.sb + 1 <= 6, "lb + sb + 1 <= 6"),
            (self.t_settle >= 1 and self.t_lock >= 1 and self.t_slew >= 1, "LDO/PLL times >= 1"),
            (self.t_w >= 1, "t_w >= 1"),
            (max(self.abuf_depth, self.wbuf_depth, self.obuf_depth, self.emb_depth) <= 4096,
             "buffer depths <= 4096 (12-bit address fields)"),
            (self.kt * self.n <= 1 << 17, "LoRA D_in <= 2^17 keeps h exact in INT32"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"AccelParams: {msg}")

    @classmethod
    def small(cls) -> "AccelParams":
        return cls()

    @classmethod
    def asic28(cls) -> "AccelParams":
        return cls(n=16, abuf_depth=1024, wbuf_depth=512, obuf_depth=512, ne=8, rk=8, kt=36, nt=36,
                   et=4, nslot=2, t_w=64, nl=16, lb=2, sb=3, npb=4, t_slew=5, t_settle=50,
                   t_lock=250, qdepth=8)

    def with_(self, **kw) -> "AccelParams":
        return replace(self, **kw)

    # derived quantities (names follow docs/hw-spec.md)
    @property
    def ew(self) -> int:
        return self.rk * (self.kt + self.nt)

    @property
    def envm_depth(self) -> int:
        return self.ne * self.ew

    @property
    def emb_depth(self) -> int:
        return self.ne * self.et

    @property
    def e_dim(self) -> int:
        return self.et * self.n

    @property
    def b_a(self) -> int:
        return self.n // 4

    @property
    def b_w(self) -> int:
        return self.n * self.n // 4

    @property
    def b_o(self) -> int:
        return self.n

    @property
    def sw(self) -> int:
        return (self.e_dim * (1 << 14)).bit_length()

    @property
    def sq(self) -> int:
        return ceil(self.sw / 2)

    @property
    def dw(self) -> int:
        return max((self.e_dim * (1 << 14)).bit_length() + 15, 31)

    @property
    def npol(self) -> int:
        return 1 << (self.lb + self.sb + 1)

    @property
    def nlen(self) -> int:
        return self.ne * self.npb

    def depth(self, buf: int) -> int:
        return [self.abuf_depth, self.wbuf_depth, self.obuf_depth, self.emb_depth][buf]

    def beats(self, buf: int) -> int:
        return [self.b_a, self.b_w, self.b_o, self.b_a][buf]

    def word_bits(self, buf: int) -> int:
        return 32 * self.beats(buf)
