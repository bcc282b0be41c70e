"""Which tensors a distillation stage trains (a light module: the `lam distill` parser reads it)."""

# "mixers": only the LAM mixers train (the teacher's embeddings, FFNs and LayerNorms stay
# frozen); "all": every tensor trains; "last-ffn": only the last layer's feed-forward block
# (ffn_in, ffn_out, ffn_norm; stage 3).
TRAINABLE_SCOPES = ("mixers", "all", "last-ffn")
