"""Which tensors a distillation stage trains (a light module: the `lam distill` parser reads it)."""

# "mixers": only the LAM mixers train (the teacher's embeddings, FFNs and LayerNorms stay
# frozen); "all": every tensor trains.
TRAINABLE_SCOPES = ("mixers", "all")
