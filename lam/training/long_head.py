"""Stage 3, long documents: retrain the last layer's feed-forward block so that a document's
mean-pooled embedding is found by passages from any part of it.

Everything below the last feed-forward block stays frozen, so its input (the last layer's
`mixer_norm` output, one 384-vector per token) is computed once per text and cached
(`cache_features`); a training step then costs a few small matmuls instead of a pass over
thousands of tokens, which is what makes long documents trainable on 2 CPU cores.

Loss per step: symmetric InfoNCE between passages (3-sentence known-item queries from the
training side of the long-document split) and their documents (the mean over a random sample
of the document's tokens, sometimes from a random window of it), every other document of the
batch a negative; plus stage 2's distillation loss on short texts against the teacher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._torch_model import LAMModel
from .stage2 import embedding_loss
from .teacher import TextTokens, pad_token_ids


@dataclass
class TokenFeatures:
    """Ragged per-text features: rows `offsets[i]:offsets[i + 1]` of `values` (T, d) float16 are text i's tokens."""

    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "values.npy", self.values)
        np.save(path / "offsets.npy", self.offsets)

    @classmethod
    def load(cls, path: Path) -> "TokenFeatures":
        return cls(np.load(path / "values.npy", mmap_mode="r"), np.load(path / "offsets.npy"))


@torch.no_grad()
def last_ffn_inputs(model: LAMModel, token_ids: list[list[int]]) -> list[np.ndarray]:
    """The last layer's feed-forward input (L_i, d) float16 of each text (one padded batch)."""
    captured = []
    hook = model.layers[-1].mixer_norm.register_forward_hook(lambda module, args, out: captured.append(out))
    packing, model.pack_tokens = model.pack_tokens, False  # the hook reads the padded (B, L, d) layout
    try:
        model(*pad_token_ids(token_ids))
    finally:
        hook.remove()
        model.pack_tokens = packing
    hidden = torch.cat(captured, dim=1)  # the token-wise part runs in blocks along the sequence
    return [hidden[i, :len(ids)].numpy().astype(np.float16) for i, ids in enumerate(token_ids)]


def features_of(model: LAMModel, token_ids: list[list[int]], batch_tokens: int = 16384,
                description: str = "features") -> TokenFeatures:
    """`last_ffn_inputs` of every text, in length-sorted batches of about `batch_tokens` tokens."""
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    found: list = [None] * len(token_ids)
    with tqdm(total=sum(map(len, token_ids)), desc=description, unit="tok", unit_scale=True, mininterval=5) as bar:
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * len(token_ids[order[stop]]) <= batch_tokens:
                stop += 1
            rows = order[start:stop]
            for row, features in zip(rows, last_ffn_inputs(model, [token_ids[i] for i in rows])):
                found[row] = features
            bar.update(sum(len(token_ids[i]) for i in rows))
            start = stop
    lengths = np.array([len(f) for f in found], dtype=np.int64)
    return TokenFeatures(np.concatenate(found), np.concatenate([[0], np.cumsum(lengths)]))


def cache_features(model: LAMModel, tokens: TextTokens, documents: list[str], queries, short_texts: list[str],
                   short_targets: np.ndarray, out: Path, max_document_tokens: int, max_tokens: int = 128) -> None:
    """Write documents/, queries/, short/ features, short_targets.npy and queries.json under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    features_of(model, tokens([q.text for q in queries], 512), description="queries").save(out / "queries")
    features_of(model, tokens(short_texts, max_tokens), description="short texts").save(out / "short")
    np.save(out / "short_targets.npy", np.asarray(short_targets, dtype=np.float32))
    (out / "queries.json").write_text(json.dumps([[q.document, q.depth] for q in queries]))
    features_of(model, tokens(documents, max_document_tokens), description="documents").save(out / "documents")


@dataclass
class FeatureCache:
    documents: TokenFeatures
    queries: TokenFeatures
    query_documents: np.ndarray   # (Q,) document index of each query
    query_depths: np.ndarray      # (Q,) token depth of each query
    short: TokenFeatures
    short_targets: np.ndarray     # (S, d) teacher embeddings of the short texts

    @classmethod
    def load(cls, path: Path) -> "FeatureCache":
        pairs = np.array(json.loads((path / "queries.json").read_text()), dtype=np.int64).reshape(-1, 2)
        return cls(TokenFeatures.load(path / "documents"), TokenFeatures.load(path / "queries"), pairs[:, 0],
                   pairs[:, 1], TokenFeatures.load(path / "short"), np.load(path / "short_targets.npy"))


def pooled(layer, h: np.ndarray) -> torch.Tensor:
    """Normalised mean over tokens of `layer.ffn` of one text's cached features (L, d)."""
    return F.normalize(layer.ffn(torch.from_numpy(np.asarray(h, dtype=np.float32))).mean(0), dim=-1)


def document_view(features: np.ndarray, rng: np.random.Generator, sample_tokens: int, window_fraction: float) -> np.ndarray:
    """A random sample of at most `sample_tokens` of a document's token features; with probability
    `window_fraction`, only from a random window (512 tokens ... whole, log-uniform) of it."""
    lo, hi = 0, len(features)
    if rng.random() < window_fraction and hi > 2048:
        size = int(np.exp(rng.uniform(np.log(512), np.log(hi))))
        lo = int(rng.integers(0, hi - size + 1))
        hi = lo + size
    if hi - lo <= sample_tokens:
        return features[lo:hi]
    return features[np.sort(rng.choice(np.arange(lo, hi), size=sample_tokens, replace=False))]


def info_nce(queries: torch.Tensor, documents: torch.Tensor, temperature: float) -> tuple[torch.Tensor, dict]:
    """Symmetric InfoNCE of normalised (B, d) queries and documents; pair i is the positive of row i."""
    logits = queries @ documents.T / temperature
    labels = torch.arange(len(queries))
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, {"in_batch_accuracy": round(accuracy, 3)}


def head_loss(layer, cache: FeatureCache, seed: int, documents_per_batch: int, short_batch_size: int,
              sample_tokens: int, window_fraction: float, temperature: float, distill_weight: float,
              similarity_weight: float):
    """step -> (loss, log numbers) for `lam.training.loop.run_loop`."""
    by_document: dict[int, np.ndarray] = {}
    for document in np.unique(cache.query_documents):
        by_document[int(document)] = np.flatnonzero(cache.query_documents == document)
    documents = np.array(sorted(by_document))

    def step_loss(step: int):
        rng = np.random.default_rng([seed, step])
        picked = rng.choice(documents, size=min(documents_per_batch, len(documents)), replace=False)
        queries = [int(rng.choice(by_document[int(d)])) for d in picked]
        document_embeddings = torch.stack([pooled(layer, document_view(cache.documents[int(d)], rng, sample_tokens,
                                                                       window_fraction)) for d in picked])
        query_embeddings = torch.stack([pooled(layer, cache.queries[q]) for q in queries])
        contrastive, extra = info_nce(query_embeddings, document_embeddings, temperature)
        short = rng.choice(len(cache.short), size=short_batch_size, replace=False)
        short_embeddings = torch.stack([pooled(layer, cache.short[int(i)]) for i in short])
        distill, distill_extra = embedding_loss(short_embeddings, torch.from_numpy(cache.short_targets[short]),
                                                similarity_weight)
        loss = contrastive + distill_weight * distill
        return loss, {"contrastive": round(contrastive.item(), 4), "distill": round(distill.item(), 5), **extra,
                      **distill_extra}
    return step_loss


@torch.no_grad()
def cached_known_item(layer, cache: FeatureCache, bands) -> dict:
    """Known-item accuracy@1 x 100 by depth band (and overall) of the cached documents and queries."""
    documents = torch.stack([pooled(layer, cache.documents[i]) for i in range(len(cache.documents))]).numpy()
    queries = torch.stack([pooled(layer, cache.queries[i]) for i in range(len(cache.queries))]).numpy()
    scores = queries @ documents.T
    own = scores[np.arange(len(queries)), cache.query_documents]
    first = (scores > own[:, None]).sum(1) == 0
    result = {f"{lo}-{hi}": round(100 * float(first[(cache.query_depths >= lo) & (cache.query_depths < hi)].mean()), 1)
              for lo, hi in bands if ((cache.query_depths >= lo) & (cache.query_depths < hi)).any()}
    result["all"] = round(100 * float(first.mean()), 1)
    return result
