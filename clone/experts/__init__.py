"""Per-domain LoRA experts and the request-wise, parameter-free MoE router (paper section 2).

    experts = train_experts(model, tokenizer, out_dir)          # one adapter + embedding per domain
    router = Router(model, experts); calibrate(router, validation_sets(tokenizer, domains)).save(out_dir)
    router = Router.from_dir(model, out_dir, mode="soft")        # attach a saved set with its router.json
    router.route(prompt_tokens)                                  # sets set_mix per request
"""

from clone.experts.calibrate import calibrate, mixed_windows, validation_sets
from clone.experts.embedding import embed_tokens, embedding_layer, layer_states, pool_chunks
from clone.experts.expert_set import Expert, ExpertSet, load_experts, save_expert, train_expert, train_experts
from clone.experts.router import MODES, Router, RouterConfig, mix_weights, routing_weights

__all__ = ["MODES", "Expert", "ExpertSet", "Router", "RouterConfig", "calibrate", "embed_tokens", "embedding_layer",
           "layer_states", "load_experts", "mix_weights", "mixed_windows", "pool_chunks", "routing_weights",
           "save_expert", "train_expert", "train_experts", "validation_sets"]
