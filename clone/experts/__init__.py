"""Per-domain LoRA experts and the request-wise, parameter-free MoE router (paper section 2).

    experts = train_experts(model, tokenizer, out_dir)          # one adapter + embedding per domain
    experts = load_experts(model, out_dir)                       # attach a saved set
    router = Router(model, experts, mode="soft"); router.route(prompt_tokens)  # sets set_mix per request
"""

from clone.experts.embedding import embed_tokens, embedding_layer
from clone.experts.expert_set import Expert, ExpertSet, load_experts, save_expert, train_expert, train_experts
from clone.experts.router import MODES, Router, routing_weights

__all__ = ["MODES", "Expert", "ExpertSet", "Router", "embed_tokens", "embedding_layer", "load_experts",
           "routing_weights", "save_expert", "train_expert", "train_experts"]
