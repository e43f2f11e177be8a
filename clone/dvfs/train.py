"""Training the DVFS controller: REINFORCE with a leave-one-out baseline (RLOO), on request episodes of
the fast simulated board (clone.dvfs.episode) with the websearch co-runner.

Episode = one request from its start time (drawn uniformly over a long co-runner timeline) with random
initial clocks. Each request is rolled out K times with the same timeline (common random numbers), so
the baseline for a rollout is the mean return of the other K-1: what remains is the effect of the
sampled clocks. Rewards are per phase (the paper decouples prefill and decode):

    r_phase = - E_table,phase / E_ref,phase - miss_phase * (MISS_PENALTY + OVERSHOOT_PENALTY * min(overshoot, 0.5))

E_table = power-table power x measured phase time (PAPER.md: R = sum P_dec(f) T_dec + P_pre(f) T_pre),
E_ref = the same at max clocks without interference (so every request weighs alike), overshoot = the
relative amount by which TTFT (prefill) or mean TPOT (decode) exceeds its target. Prefill decisions are
credited with the prefill reward, decode decisions with the decode reward. Adam, entropy bonus
annealed to zero; the greedy (argmax) policy is deployed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from clone.dvfs.controller import MLP, ControllerPolicy, ControllerSpec, fit_speed_ref, shape_key
from clone.dvfs.episode import FastBoard, Outcome, run_request
from clone.dvfs.length import LengthPredictor
from clone.dvfs.powertable import PowerTable
from clone.runtime.device import DOMAINS, Clocks
from clone.runtime.traces import TraceRequest

MISS_PENALTY = 4.0
OVERSHOOT_PENALTY = 8.0
MARGIN = 0.03  # a phase within 3% of its target also pays a small penalty, to keep a safety margin


def action_set(table: PowerTable, max_clocks: tuple[float, float, float], per_phase: int = 8
               ) -> tuple[list[tuple[float, float, float]], list[bool], list[bool]]:
    """Union of the prefill and decode Pareto sets (thinned to per_phase each) and max clocks."""
    pre, dec = table.pareto("prefill", per_phase), table.pareto("decode", per_phase)
    acts = list(dict.fromkeys([max_clocks, *pre, *dec]))
    return acts, [a in pre or a == max_clocks for a in acts], [a in dec or a == max_clocks for a in acts]


def phase_rewards(o: Outcome, e_ref_pre: float, e_ref_dec: float) -> tuple[float, float]:
    def pen(actual: float, target: float | None) -> float:
        if target is None:
            return 0.0
        over = actual / target - 1.0
        if over > 0:
            return MISS_PENALTY + OVERSHOOT_PENALTY * min(over, 0.5)
        return 0.3 * max(0.0, 1.0 + over / MARGIN) if over > -MARGIN else 0.0

    r_pre = -o.table_prefill_J / e_ref_pre - pen(o.ttft_s, o.ttft_target_s)
    r_dec = -o.table_decode_J / e_ref_dec - (pen(o.tpot_s, o.tpot_target_s) if o.output_tokens > 1 else 0.0)
    return r_pre, r_dec


@dataclass
class TrainConfig:
    iterations: int = 120
    batch: int = 24
    rollouts: int = 4
    lr: float = 0.02
    entropy: float = 0.02
    seed: int = 0
    timeline_s: float = 3600.0


class _Adam:
    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.p, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(x) for x in params]
        self.v = [np.zeros_like(x) for x in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p += self.lr * (m / (1 - 0.9 ** self.t)) / (np.sqrt(v / (1 - 0.999 ** self.t)) + 1e-8)  # ascent


def _grads(mlp: MLP, samples: list[tuple[np.ndarray, np.ndarray, int, float]], entropy: float) -> list[np.ndarray]:
    """Gradient of sum A log pi(a|s) + entropy * H(pi(.|s)) over the batch, averaged."""
    X = np.stack([s[0] for s in samples])
    M = np.stack([s[1] for s in samples])
    a = np.array([s[2] for s in samples])
    A = np.array([s[3] for s in samples])
    h = np.tanh(X @ mlp.W1 + mlp.b1)
    z = np.where(M, h @ mlp.W2 + mlp.b2, -1e9)
    z -= z.max(1, keepdims=True)
    p = np.exp(z) * M
    p /= p.sum(1, keepdims=True)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(a)), a] = 1.0
    g_z = A[:, None] * (onehot - p)
    logp = np.log(np.where(M, p, 1.0))
    H = -(p * logp).sum(1, keepdims=True)
    g_z += entropy * (-p * (logp + H)) * M
    g_z /= len(samples)
    gW2, gb2 = h.T @ g_z, g_z.sum(0)
    g_h = (g_z @ mlp.W2.T) * (1 - h * h)
    return [X.T @ g_h, g_h.sum(0), gW2, gb2]


def evaluate_reward(spec: ControllerSpec, board: FastBoard, requests: Sequence[TraceRequest], starts: Sequence[float],
                    e_refs: Sequence[tuple[float, float]]) -> float:
    """Mean greedy per-request reward (prefill + decode) on fixed episodes."""
    pol = ControllerPolicy(spec)
    total = 0.0
    for r, t0, (ep, ed) in zip(requests, starts, e_refs):
        board.clocks = Clocks(*spec.actions[0])
        o = run_request(board, pol, r, t0)
        total += sum(phase_rewards(o, ep, ed))
    return total / len(requests)


def e_ref(spec: ControllerSpec, table: PowerTable, r: TraceRequest, P: int) -> tuple[float, float]:
    top = spec.actions[0]
    n = r.expected_output_tokens or r.max_new_tokens
    return (table.power_W("prefill", top) * spec.speed.prefill_s(P),
            table.power_W("decode", top) * spec.speed.token_s(P) * max(n - 1, 1))


def train_controller(profile: Any, mode: str | None, board: FastBoard, table: PowerTable,
                     requests: Sequence[TraceRequest], predictor: LengthPredictor | None, cfg: TrainConfig,
                     progress: Callable[[int, float], None] | None = None) -> tuple[ControllerSpec, dict]:
    """Train on `requests` (true lengths in expected_output_tokens); returns the spec and a report with
    the greedy reward on fixed validation episodes before and after training."""
    from clone.dvfs.requests import estimate_prompt_tokens

    table.check_profile(profile, mode)
    m = profile.mode(mode)
    top = tuple(profile.clock_choices(d, m.name)[-1] for d in DOMAINS)
    acts, pmask, dmask = action_set(table, top)
    spec = ControllerSpec(profile.name, m.name, acts, pmask, dmask, fit_speed_ref(board), MLP(len(acts), seed=cfg.seed),
                          predictor, {"algorithm": "REINFORCE with leave-one-out baseline (RLOO)"},
                          [table.time_s("prefill", a) / table.time_s("prefill", top) for a in acts],
                          [table.time_s("decode", a) / table.time_s("decode", top) for a in acts])
    rng = np.random.default_rng(cfg.seed)
    reqs = list(requests)
    Ps = [estimate_prompt_tokens(r.prompt) for r in reqs]
    refs = [e_ref(spec, table, r, P) for r, P in zip(reqs, Ps)]
    val_idx = rng.choice(len(reqs), size=min(48, len(reqs)), replace=False)
    val_starts = rng.uniform(0, cfg.timeline_s, len(val_idx))
    val = ([reqs[i] for i in val_idx], val_starts, [refs[i] for i in val_idx])
    before = evaluate_reward(spec, board, *val)
    opt = _Adam(spec.mlp.params, cfg.lr)
    pol = ControllerPolicy(spec, sample=True, rng=rng)
    t_start = time.perf_counter()
    history = []
    for it in range(cfg.iterations):
        samples: list[tuple[np.ndarray, np.ndarray, int, float]] = []
        mean_r = 0.0
        for i in rng.choice(len(reqs), size=cfg.batch):
            t0 = float(rng.uniform(0, cfg.timeline_s))
            init = acts[int(rng.integers(len(acts)))]
            runs = []
            for _ in range(cfg.rollouts):
                board.clocks = Clocks(*init)
                pol.trajectory = []
                o = run_request(board, pol, reqs[i], t0)
                runs.append((list(pol.trajectory), phase_rewards(o, *refs[i])))
            R = np.array([r for _, r in runs])  # (K, 2)
            mean_r += R.sum(1).mean()
            base = (R.sum(0, keepdims=True) - R) / (cfg.rollouts - 1)
            adv = R - base
            for k, (traj, _) in enumerate(runs):
                for phase, x, mask, a in traj:
                    samples.append((x, mask, a, float(adv[k, 0 if phase == "prefill" else 1])))
        if samples:
            ent = cfg.entropy * max(0.0, 1.0 - it / (0.8 * cfg.iterations))
            opt.step(_grads(spec.mlp, samples, ent))
        history.append(mean_r / cfg.batch)
        if progress:
            progress(it, history[-1])
    after = evaluate_reward(spec, board, *val)
    report = {"algorithm": spec.meta["algorithm"], "iterations": cfg.iterations, "batch": cfg.batch,
              "rollouts": cfg.rollouts, "train_s": time.perf_counter() - t_start, "reward_before": before,
              "reward_after": after, "n_params": spec.mlp.n_params(), "actions": len(acts),
              "reward_history": [round(h, 4) for h in history]}
    spec.meta.update({k: v for k, v in report.items() if k != "reward_history"})
    spec.meta["shape_key"] = shape_key(board.shape)
    return spec, report
