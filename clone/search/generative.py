"""Generative search (CLONE section 1, steps 2-4): encoder, decoder and evaluator over ratio sequences.

Representation. Each decoder layer is one token. Its input is a linear projection (embedding size
32) of two numbers: the ratio scaled by the largest allowed ratio, and the layer's relative position
i/(L-1), so one model handles any number of layers and nearby ratios have nearby inputs (a lookup
table over 1001 ratio bins would see most bins once or never on a few hundred records).

Encoder: single-layer LSTM, hidden 64, over the L tokens. Its L output vectors, each L2-normalised,
are the continuous representation E (L x 64), as in NAO (Luo et al. 2018), on which CLONE builds.
Evaluator (2 layers, hidden 200): Linear(64, 200) + ReLU on every layer's vector, mean over layers,
Linear(200, 1); it predicts the normalised score z = (log s - mean) / std over the training records.
Pooling between the two layers (not before the first) gives each layer its own gradient dz/dE_i.
Decoder: single-layer LSTM, hidden 64, initial state from mean(E); the input at layer i is the
projection of (previous decoded ratio, position of layer i) concatenated with E_i; a dot-product
attention over all of E follows, then a classifier over the ratio bins of the 0.001 grid between the
smallest lower and the largest upper bound. Targets are Gaussian-smoothed over neighbouring bins
(sigma 0.004) so the classifier learns that bins are ordered.

Loss: score_weight * MSE(z) + (1 - score_weight) * soft cross-entropy of the reconstruction.
Gradient ascent: E <- E + eta * dz/dE from the top-K records' E, for `ascent_steps` steps; every
step's E* is decoded by beam search (bins outside a layer's bounds masked), repaired to the
parameter target by the caller's repair rule or dropped, re-encoded and ranked by predicted score.
Two optional variants (off by default, they did not help on the synthetic objective): renormalising
E* after each step, and projecting the ascent direction orthogonal to a budget head's gradient.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from clone.search.records import GRID, RatioRecord, ratio_key


@contextmanager
def _one_thread() -> Iterator[None]:
    """The model is tiny: one intra-op thread is fastest, and several stall badly on a busy CPU
    (measured 8 ms vs 440 ms per LSTM step on 2 loaded cores). Restores the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class GenerativeConfig:
    """Hyperparameters; the paper's values where it gives them (hidden 64, embedding 32, FF 200,
    top-K 25, eta 0.8), the rest chosen here and stated in docs/search.md."""

    embed_dim: int = 32
    hidden: int = 64
    eval_hidden: int = 200
    epochs: int = 100
    batch_size: int = 16
    lr: float = 5e-3
    weight_decay: float = 1e-4
    score_weight: float = 0.5
    label_sigma: float = 0.004
    top_k: int = 25
    eta: float = 0.8
    ascent_steps: int = 4
    beam: int = 4
    renormalise: bool = False
    budget_projection: bool = False
    seed: int = 0


class RatioSeqModel(nn.Module):
    """Encoder LSTM + evaluator MLP + attention decoder LSTM over per-layer ratio tokens."""

    def __init__(self, cfg: GenerativeConfig, n_bins: int, lo: float, r_scale: float) -> None:
        super().__init__()
        self.n_bins, self.lo, self.r_scale = n_bins, lo, r_scale
        self.embed = nn.Linear(2, cfg.embed_dim)
        self.encoder = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True)
        self.eval_in = nn.Linear(cfg.hidden, cfg.eval_hidden)
        self.eval_out = nn.Linear(cfg.eval_hidden, 1)
        self.budget_head = nn.Linear(cfg.hidden, 1)
        self.start = nn.Parameter(torch.zeros(cfg.embed_dim))
        self.decoder = nn.LSTM(cfg.embed_dim + cfg.hidden, cfg.hidden, batch_first=True)
        self.attn_out = nn.Linear(2 * cfg.hidden, cfg.hidden)
        self.classifier = nn.Linear(cfg.hidden, n_bins)

    # tokens ------------------------------------------------------------------------------------
    @staticmethod
    def positions(n_layers: int) -> torch.Tensor:
        return torch.linspace(0.0, 1.0, n_layers) if n_layers > 1 else torch.zeros(1)

    def tokens(self, ratios: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([ratios / self.r_scale, pos.expand_as(ratios)], dim=-1)
        return self.embed(feats)

    def bins_to_ratio(self, bins: torch.Tensor) -> torch.Tensor:
        return self.lo + bins.to(torch.float32) * GRID

    def ratio_to_bins(self, ratios: torch.Tensor) -> torch.Tensor:
        return torch.round((ratios - self.lo) / GRID).long().clamp(0, self.n_bins - 1)

    # parts -------------------------------------------------------------------------------------
    def encode(self, ratios: torch.Tensor) -> torch.Tensor:
        """(B, L) ratios -> E (B, L, hidden), each vector L2-normalised."""
        out, _ = self.encoder(self.tokens(ratios, self.positions(ratios.shape[1])))
        return F.normalize(out, dim=-1)

    def predict(self, emb: torch.Tensor) -> torch.Tensor:
        """Layer 1 per layer token, mean over layers, layer 2: each layer gets its own gradient."""
        return self.eval_out(torch.relu(self.eval_in(emb)).mean(dim=1)).squeeze(-1)

    def predict_removed(self, emb: torch.Tensor) -> torch.Tensor:
        """Normalised parameter removal of the encoded vector, used to keep the ascent on budget."""
        return self.budget_head(emb.mean(dim=1)).squeeze(-1)

    def _init_state(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = emb.mean(dim=1).unsqueeze(0).contiguous()
        return h0, torch.zeros_like(h0)

    def _attend(self, out: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(out @ emb.transpose(1, 2), dim=-1)
        ctx = weights @ emb
        return self.classifier(torch.tanh(self.attn_out(torch.cat([out, ctx], dim=-1))))

    def decode_teacher(self, emb: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, n_bins) with the true previous ratios as inputs (training)."""
        b, n = ratios.shape
        pos = self.positions(n)
        prev = self.tokens(ratios[:, :-1], pos[1:]) if n > 1 else ratios.new_zeros(b, 0, self.start.numel())
        first = self.start.expand(b, 1, -1)
        inputs = torch.cat([torch.cat([first, prev], dim=1), emb], dim=-1)
        out, _ = self.decoder(inputs, self._init_state(emb))
        return self._attend(out, emb)

    def beam_decode(self, emb: torch.Tensor, beam: int, lo_bins: torch.Tensor, hi_bins: torch.Tensor) -> torch.Tensor:
        """Beam search: (N, L, H) -> the best `beam` bin sequences per start, (N, beam, L), best first."""
        n, length, hid = emb.shape
        pos = self.positions(length)
        arange = torch.arange(self.n_bins)
        state = self._init_state(emb)
        seqs = torch.zeros(n, 1, 0, dtype=torch.long)
        logp = torch.zeros(n, 1)
        width = 1
        for t in range(length):
            emb_b = emb.unsqueeze(1).expand(n, width, length, hid).reshape(n * width, length, hid)
            if t == 0:
                tok = self.start.expand(n * width, -1)
            else:
                prev = self.bins_to_ratio(seqs[:, :, -1]).reshape(-1, 1)
                tok = self.tokens(prev, pos[t : t + 1]).squeeze(1)
            inp = torch.cat([tok, emb_b[:, t]], dim=-1).unsqueeze(1)
            out, state = self.decoder(inp, state)
            logits = self._attend(out, emb_b).squeeze(1)
            allowed = (arange >= lo_bins[t]) & (arange <= hi_bins[t])
            logits = logits.masked_fill(~allowed, -math.inf)
            step = torch.log_softmax(logits, dim=-1).reshape(n, width, self.n_bins)
            total = (logp.unsqueeze(-1) + step).reshape(n, -1)
            new_width = min(beam, total.shape[1])
            logp, idx = total.topk(new_width, dim=-1)
            src, tok_bin = idx // self.n_bins, idx % self.n_bins
            seqs = torch.cat([torch.gather(seqs, 1, src.unsqueeze(-1).expand(-1, -1, seqs.shape[2])), tok_bin.unsqueeze(-1)], dim=-1)
            h, c = state
            flat = (src + torch.arange(n).unsqueeze(1) * width).reshape(-1)
            state = (h[:, flat], c[:, flat])
            width = new_width
        return seqs


@dataclass
class TrainStats:
    n_records: int
    epochs: int
    seconds: float
    final_loss: float
    recon_mae: float  # mean |decoded - true| over training ratios, greedy beam decode
    score_corr: float  # Pearson correlation of predicted and true normalised scores (training set)


@dataclass
class Candidate:
    ratios: list[float]
    predicted_z: float
    start_rank: int
    step: int


@dataclass
class GenerativeSearch:
    """Train on records, then generate candidates by gradient ascent and beam search."""

    lo: np.ndarray
    hi: np.ndarray
    cfg: GenerativeConfig = field(default_factory=GenerativeConfig)
    removed: Callable[[Sequence[float]], float] | None = None

    def __post_init__(self) -> None:
        self.lo = np.asarray(self.lo, dtype=float)
        self.hi = np.asarray(self.hi, dtype=float)
        self.lo_grid = round(float(self.lo.min()), 3)
        n_bins = int(round((float(self.hi.max()) - self.lo_grid) / GRID)) + 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            self.model = RatioSeqModel(self.cfg, n_bins, self.lo_grid, max(float(self.hi.max()), GRID))
        self.mean = 0.0
        self.std = 1.0
        self.stats: TrainStats | None = None

    # data ----------------------------------------------------------------------------------------
    def _bin_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        lo = m.ratio_to_bins(torch.tensor(self.lo, dtype=torch.float32) + 1e-6)
        hi = m.ratio_to_bins(torch.tensor(self.hi, dtype=torch.float32) + 1e-6)
        return lo, hi

    def _soft_targets(self, ratios: torch.Tensor) -> torch.Tensor:
        centres = (ratios - self.lo_grid) / GRID
        grid = torch.arange(self.model.n_bins, dtype=torch.float32)
        sigma = max(self.cfg.label_sigma / GRID, 0.5)
        w = torch.exp(-0.5 * ((grid - centres.unsqueeze(-1)) / sigma) ** 2)
        return w / w.sum(dim=-1, keepdim=True)

    def normalise(self, scores: np.ndarray) -> np.ndarray:
        return (np.log(np.maximum(scores, 1e-300)) - self.mean) / self.std

    # training ------------------------------------------------------------------------------------
    def fit(self, records: Sequence[RatioRecord], progress: bool = False) -> TrainStats:
        """Joint training on records with a positive finite score, in a canonical order (by ratio
        key) so the model does not depend on the order candidates happened to finish in.

        With a `removed` function, every record also gets a rescaled copy (ratios x U(0.6, 1.4))
        that trains only the reconstruction and the budget head: all records sit on the target, so
        without them nothing would tell the model which latent direction means "prune less"."""
        recs = sorted((r for r in records if r.ok and r.score > 0), key=lambda r: r.key)
        if len(recs) < 2:
            raise ValueError(f"need at least 2 scored records to train, got {len(recs)}")
        start = time.perf_counter()
        cfg, model = self.cfg, self.model
        x_np = np.array([r.ratios for r in recs], dtype=float)
        logs = np.log([r.score for r in recs])
        self.mean, self.std = float(logs.mean()), float(logs.std() or 1.0)
        z_np = self.normalise(np.array([r.score for r in recs]))
        has_score = np.ones(len(recs), dtype=bool)
        if self.removed is not None:
            rng = np.random.default_rng([cfg.seed, 3])
            aug = np.clip(x_np * rng.uniform(0.6, 1.4, (len(recs), 1)), self.lo, self.hi)
            aug = np.round(aug, 3)
            x_np = np.concatenate([x_np, aug])
            z_np = np.concatenate([z_np, np.zeros(len(recs))])
            has_score = np.concatenate([has_score, np.zeros(len(recs), dtype=bool)])
            removed = np.array([self.removed(list(v)) for v in x_np])
            self.removed_mean, self.removed_std = float(removed[: len(recs)].mean()), 0.05
            b = torch.tensor((removed - self.removed_mean) / self.removed_std, dtype=torch.float32)
        x = torch.tensor(x_np, dtype=torch.float32)
        z = torch.tensor(z_np, dtype=torch.float32)
        w = torch.tensor(has_score, dtype=torch.float32)
        soft = self._soft_targets(x)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        n = len(x)
        loss = torch.tensor(math.nan)
        model.train()
        for _ in tqdm(range(cfg.epochs), desc="train generative model", unit="epoch", disable=not progress, file=sys.stderr):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                emb = model.encode(x[idx])
                wi = w[idx]
                score_loss = (wi * (model.predict(emb) - z[idx]) ** 2).sum() / wi.sum().clamp(min=1.0)
                logits = model.decode_teacher(emb, x[idx])
                recon = -(soft[idx] * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
                loss = cfg.score_weight * score_loss + (1 - cfg.score_weight) * recon
                if self.removed is not None:
                    loss = loss + F.mse_loss(model.predict_removed(emb), b[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        model.eval()
        k = len(recs)
        with torch.no_grad():
            emb = model.encode(x[:k])
            pred = model.predict(emb).numpy()
            decoded = self.decode(emb, beam=1)[:, 0]
        corr = float(np.corrcoef(pred, z_np[:k])[0, 1]) if k > 2 else math.nan
        mae = float(np.abs(decoded - x_np[:k]).mean())
        self.stats = TrainStats(k, cfg.epochs, time.perf_counter() - start, float(loss.detach()), mae, corr)
        return self.stats

    # generation ----------------------------------------------------------------------------------
    def encode(self, ratios: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.model.encode(torch.tensor(np.asarray(ratios), dtype=torch.float32).reshape(len(ratios), -1))

    def predict_z(self, ratios: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model.predict(self.encode(ratios)).numpy()

    def decode(self, emb: torch.Tensor, beam: int | None = None) -> np.ndarray:
        """(N, L, H) -> ratios (N, beam, L) on the 0.001 grid, best beam first."""
        lo_b, hi_b = self._bin_bounds()
        with torch.no_grad():
            bins = self.model.beam_decode(emb, beam or self.cfg.beam, lo_b, hi_b)
        return np.round(self.model.bins_to_ratio(bins).numpy().astype(float), 3)

    def ascend(self, emb: torch.Tensor) -> list[torch.Tensor]:
        """E* = E + eta * dz/dE, repeated; returns E* after every step."""
        path = []
        e = emb.clone()
        for _ in range(self.cfg.ascent_steps):
            e = e.detach().requires_grad_(True)
            with torch.enable_grad():
                grad, = torch.autograd.grad(self.model.predict(e).sum(), e)
                if self.removed is not None and self.cfg.budget_projection:  # move along the budget: no change of predicted removal
                    g_b, = torch.autograd.grad(self.model.predict_removed(e).sum(), e)
                    coef = (grad * g_b).sum(dim=(1, 2), keepdim=True) / (g_b * g_b).sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)
                    grad = grad - coef * g_b
            e = e + self.cfg.eta * grad
            if self.cfg.renormalise:  # back onto the unit sphere the encoder's outputs live on
                e = F.normalize(e, dim=-1)
            e = e.detach()
            path.append(e)
        return path

    def generate(
        self,
        records: Sequence[RatioRecord],
        repair: Callable[[np.ndarray], np.ndarray | None],
        n: int,
        exclude: Callable[[str], bool] = lambda key: False,
    ) -> list[Candidate]:
        """The n best distinct repaired candidates (by predicted score of the repaired vector),
        grown from the top-K records; vectors already evaluated (`exclude(key)`) are skipped."""
        recs = sorted((r for r in records if r.ok and r.score > 0), key=lambda r: (-r.score, r.key))[: self.cfg.top_k]
        if not recs:
            return []
        emb = self.encode(np.array([r.ratios for r in recs]))
        path = self.ascend(emb)
        steps = torch.stack(path, dim=1)  # (K, S, L, H)
        k, s = steps.shape[:2]
        decoded = self.decode(steps.reshape(k * s, *steps.shape[2:]))  # (K*S, beam, L)
        seen: set[str] = set()
        pool: list[tuple[np.ndarray, int, int]] = []
        for i, beams in enumerate(decoded):
            for vec in beams:
                fixed = repair(vec)
                if fixed is None:
                    continue
                key = ratio_key(fixed)
                if key in seen or exclude(key):
                    continue
                seen.add(key)
                pool.append((np.asarray(fixed, dtype=float), i // s, i % s + 1))
        if not pool:
            return []
        z = self.predict_z(np.stack([p[0] for p in pool]))
        order = list(np.lexsort((np.arange(len(pool)), -z)))
        # Diversity: the best candidate of each start record first, then the rest by predicted score.
        firsts, used = [], set()
        for j in order:
            if pool[j][1] not in used:
                used.add(pool[j][1])
                firsts.append(j)
        chosen = (firsts + [j for j in order if j not in set(firsts)])[:n]
        chosen.sort(key=lambda j: (-z[j], j))
        return [Candidate([float(v) for v in pool[j][0]], float(z[j]), pool[j][1], pool[j][2]) for j in chosen]


def generate_candidates(
    records: Sequence[RatioRecord],
    lo: np.ndarray,
    hi: np.ndarray,
    repair: Callable[[np.ndarray], np.ndarray | None],
    n: int,
    cfg: GenerativeConfig | None = None,
    exclude: Callable[[str], bool] = lambda key: False,
    removed: Callable[[Sequence[float]], float] | None = None,
    progress: bool = False,
) -> tuple[list[Candidate], GenerativeSearch]:
    """Train a fresh model on the records and return n generated candidates (and the model)."""
    with _one_thread(), torch.random.fork_rng(devices=[]):
        cfg = cfg or GenerativeConfig()
        gs = GenerativeSearch(lo, hi, cfg, removed if cfg.budget_projection else None)
        torch.manual_seed(gs.cfg.seed + 2)
        gs.fit(records, progress)
        return gs.generate(records, repair, n, exclude), gs
