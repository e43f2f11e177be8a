"""The host/DRAM link behind the AXI-Stream ports, as a beat schedule.

The accelerator pulls: a streaming command's traffic is requested in its DECODE cycle (cycle 0 of
the command). Input beat i can be valid on s_axis from cycle `latency + ceil(i / rate)` on (rate in
beats per cycle, at most one 32-bit beat per cycle, the port width); the host side buffers beats
that are not yet accepted. The output sink accepts beat i no earlier than cycle `ceil(i / rate)`
after the first beat is offered. Both are what a DMA engine reading host DRAM over PCIe looks like
at the port: a fixed round-trip latency, then a sustained bandwidth.

Every streaming command's timing is the same max-plus recurrence: beat i is accepted at
c_i = max(a_i, c_{i-1} + g_i), where a_i is when the link offers it and g_i the gap the RTL state
machine needs after the previous beat (1, plus T_W after an eNVM word, plus the read cycle of a
STORE word). Its closed form c_last = G_last + max(0, max_i(a_i - G_i)), G = cumulative gaps, gives
the stall cycles directly, vectorised with numpy: no per-beat Python loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from clone.errors import CloneError


@dataclass(frozen=True)
class StreamLink:
    """latency_cycles: DECODE to the first input beat; rate: beats per cycle (0 < rate <= 1)."""

    rate: Fraction = Fraction(1)
    latency_cycles: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.rate <= 1):
            raise CloneError(f"stream link: rate {float(self.rate):g} beats/cycle is not allowed "
                             "(allowed: 0 < rate <= 1, one 32-bit beat per cycle at most)")
        if self.latency_cycles < 0:
            raise CloneError(f"stream link: latency_cycles {self.latency_cycles} must be >= 0")

    @classmethod
    def ideal(cls) -> "StreamLink":
        return cls()

    @classmethod
    def from_bandwidth(cls, bandwidth_GBps: float, latency_ns: float, freq_MHz: float) -> "StreamLink":
        """A link of a given bandwidth and round-trip latency seen by a core clocked at freq_MHz."""
        if bandwidth_GBps <= 0 or freq_MHz <= 0 or latency_ns < 0:
            raise CloneError(f"stream link: bandwidth_GBps {bandwidth_GBps}, latency_ns {latency_ns} and "
                             f"freq_MHz {freq_MHz} must be positive")
        beats_per_cycle = bandwidth_GBps * 1e9 / 4 / (freq_MHz * 1e6)
        rate = min(Fraction(1), Fraction(beats_per_cycle).limit_denominator(1 << 16))
        return cls(rate=rate, latency_cycles=int(np.ceil(latency_ns * freq_MHz / 1e3)))

    def offer(self, nbeats: int) -> np.ndarray:
        """Cycle (from DECODE) at which input beat i can first be valid."""
        i = np.arange(nbeats, dtype=np.int64)
        num, den = self.rate.numerator, self.rate.denominator
        return self.latency_cycles + (i * den + num - 1) // num

    def sink_slots(self, nbeats: int) -> np.ndarray:
        """Earliest acceptance of output beat i, counted from the first offer."""
        i = np.arange(nbeats, dtype=np.int64)
        num, den = self.rate.numerator, self.rate.denominator
        return (i * den + num - 1) // num


def stall_cycles(offer: np.ndarray, gaps: np.ndarray) -> int:
    """Cycles lost waiting for the link: max(0, max_i(offer_i - G_i)) with G the cumulative gaps
    (the acceptance cycle of beat i when the link is never late)."""
    if len(offer) == 0:
        return 0
    g = np.cumsum(gaps)
    return int(max(0, int(np.max(offer - g))))


def load_stall(link: StreamLink, words: int, beats_per_word: int, t_w: int = 0) -> int:
    """stall_in of LOAD (t_w = 0) and LOAD_ADAPTER (t_w = eNVM write cycles after each word).

    LOAD accepts one beat per cycle from cycle 1; LOAD_ADAPTER additionally closes s_axis for T_W
    cycles after the last beat of every word."""
    n = words * beats_per_word
    gaps = np.ones(n, dtype=np.int64)
    if t_w and words > 1:
        gaps[beats_per_word::beats_per_word] += t_w
    if link.rate == 1 and link.latency_cycles <= 1:
        return 0
    return stall_cycles(link.offer(n), gaps)


def store_stall(link: StreamLink, words: int, beats_per_word: int) -> int:
    """stall_out of STORE: per word one read cycle, then its beats; the first beat is offered in
    cycle 2 of the command."""
    if link.rate == 1:
        return 0
    n = words * beats_per_word
    gaps = np.ones(n, dtype=np.int64)
    gaps[beats_per_word::beats_per_word] += 1
    gaps[0] = 2
    first = 2
    return stall_cycles(first + link.sink_slots(n), gaps)
