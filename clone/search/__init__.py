"""Search of per-layer pruning ratios (CLONE generative pruning), independent of how a candidate is scored.

The caller supplies `params_removed(ratios) -> fraction` and `evaluate(ratios) -> {ppl, ttft_s, tpot_s,
energy_J}`; this package collects ratio/score records, trains the encoder/decoder/evaluator and
generates new candidates. See docs/search.md.
"""

from clone.search.score import Budget, clone_score, score_frame
from clone.search.records import RatioRecord, RecordTable, ratio_key
from clone.search.collect import (
    Evaluation,
    RatioSpace,
    collect,
    exploit_vectors,
    explore_vectors,
)
from clone.search.generative import GenerativeConfig, GenerativeSearch, generate_candidates
from clone.search.driver import SearchResult, search

__all__ = [
    "Budget",
    "clone_score",
    "score_frame",
    "RatioRecord",
    "RecordTable",
    "ratio_key",
    "Evaluation",
    "RatioSpace",
    "collect",
    "exploit_vectors",
    "explore_vectors",
    "GenerativeConfig",
    "GenerativeSearch",
    "generate_candidates",
    "SearchResult",
    "search",
]
