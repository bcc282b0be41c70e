"""The frozen teacher (a BERT sentence encoder): per-layer attention targets and sentence embeddings."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import BertModel

from .._torch_model import pool

TEACHER_MAX_TOKENS = 512


def pad_token_ids(token_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input_ids and attention_mask (B, L) int64 tensors (pad id 0)."""
    length = max(len(ids) for ids in token_ids)
    input_ids = torch.zeros(len(token_ids), length, dtype=torch.long)
    mask = torch.zeros(len(token_ids), length, dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.as_tensor(ids)
        mask[row, : len(ids)] = 1
    return input_ids, mask


class TextTokens:
    """WordPiece ids with [CLS]/[SEP], truncated to `max_tokens` tokens."""

    def __init__(self, tokenizer_file: Path):
        self.backend = Tokenizer.from_file(str(tokenizer_file))
        self.backend.no_padding()
        self.backend.no_truncation()
        self.cls_id = self.backend.token_to_id("[CLS]")
        self.sep_id = self.backend.token_to_id("[SEP]")

    def __call__(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        bodies = self.backend.encode_batch([t[: max_tokens * 16] for t in texts], add_special_tokens=False)
        return [[self.cls_id, *e.ids[: max_tokens - 2], self.sep_id] for e in bodies]


class Teacher:
    """A frozen BertModel with forward hooks on every layer's attention block."""

    def __init__(self, teacher_path: Path):
        self.model = BertModel.from_pretrained(str(teacher_path), attn_implementation="eager").eval()
        self.model.requires_grad_(False)
        self._captured: dict[tuple[str, int], torch.Tensor] = {}
        for i, layer in enumerate(self.model.encoder.layer):
            # The query projection's input is the layer's input; attention.output.dense's output is
            # the attention block before its residual and LayerNorm.
            layer.attention.self.query.register_forward_hook(self._keep("input", i, from_input=True))
            layer.attention.output.dense.register_forward_hook(self._keep("attention", i, from_input=False))

    def _keep(self, kind: str, index: int, from_input: bool):
        def hook(module, inputs, output):
            self._captured[(kind, index)] = (inputs[0] if from_input else output).detach()
        return hook

    @torch.no_grad()
    def attention_targets(self, input_ids: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer: (its input hidden states, its attention-block output), each (B, L, d)."""
        self._captured.clear()
        self.model(input_ids=input_ids, attention_mask=mask)
        return [(self._captured[("input", i)], self._captured[("attention", i)])
                for i in range(len(self.model.encoder.layer))]

    @torch.no_grad()
    def embed(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised mean-pooled sentence embeddings (B, d); sequences of at most 512 tokens."""
        return pool(self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask)

    @torch.no_grad()
    def embed_long(self, token_ids: list[int], chunk_tokens: int = TEACHER_MAX_TOKENS, batch_size: int = 8) -> torch.Tensor:
        """(d,) normalised mean of the normalised embeddings of [CLS] chunk [SEP] pieces of a
        [CLS] ... [SEP] sequence, each piece at most `chunk_tokens` tokens."""
        cls_id, body, sep_id = token_ids[0], token_ids[1:-1], token_ids[-1]
        width = chunk_tokens - 2
        pieces = [[cls_id, *body[s:s + width], sep_id] for s in range(0, max(len(body), 1), width)]
        embeddings = [self.embed(*pad_token_ids(pieces[s:s + batch_size])) for s in range(0, len(pieces), batch_size)]
        return F.normalize(torch.cat(embeddings).mean(0), dim=-1)

    def targets(self, token_ids: list[list[int]]) -> torch.Tensor:
        """(B, d) teacher targets: direct embeddings up to 512 tokens, chunk means beyond."""
        short = [i for i, ids in enumerate(token_ids) if len(ids) <= TEACHER_MAX_TOKENS]
        out = torch.empty(len(token_ids), self.model.config.hidden_size)
        if short:
            out[short] = self.embed(*pad_token_ids([token_ids[i] for i in short]))
        for i, ids in enumerate(token_ids):
            if len(ids) > TEACHER_MAX_TOKENS:
                out[i] = self.embed_long(ids)
        return out

