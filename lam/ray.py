"""Ray Data: embed a dataset's text column on a pool of actors, each holding one LAM model.

    import ray, lam.ray
    ds = ray.data.read_parquet("s3://bucket/docs/")
    ds = lam.ray.embed_dataset(ds, text_column="text", num_actors=8, cpus_per_actor=4)
    ds.write_parquet("s3://bucket/embeddings/")

Needs the `ray` extra: pip install "lam-embeddings[ray]".
"""

from __future__ import annotations

import numpy as np

from .multiprocess import embed_chunk, limit_threads

# Ray 2.9 added `concurrency=` to map_batches for actor pools, in place of `compute=`; Ray 2.51
# deprecated it again in favour of `compute=ActorPoolStrategy(size=n)`. The `ray` extra needs >= 2.9.
CONCURRENCY_DEPRECATED_IN = (2, 51)


def require_ray():
    """The `ray` module with Ray Data, or an ImportError saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data needs its own extra (pyarrow, pandas)
    except ImportError as err:
        raise ImportError("this needs Ray Data: pip install 'lam-embeddings[ray]' (or pip install 'ray[data]')"
                          f" ({err})") from err
    return ray


def actor_pool_arguments(num_actors: int, ray_version: str | None = None) -> dict:
    """The `map_batches` keyword arguments for a fixed pool of `num_actors` actors in this Ray
    (or `ray_version`): `concurrency=n` before 2.51, `compute=ActorPoolStrategy(size=n)` from 2.51."""
    ray = require_ray()
    version = tuple(int(part) for part in (ray_version or ray.__version__).split(".")[:2])
    if version < CONCURRENCY_DEPRECATED_IN:
        return {"concurrency": num_actors}
    from ray.data import ActorPoolStrategy

    return {"compute": ActorPoolStrategy(size=num_actors)}


def assigned_cpus() -> int:
    """CPUs Ray reserved for the calling actor or task (at least 1)."""
    import ray

    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


class LAMEmbedder:
    """A callable class for `Dataset.map_batches`: loads the model once per actor and adds the
    columns `embedding_column` (n, d) float32 and `token_count_column` (n,) int32 to each batch.

    Each batch is sorted by token length and cut into padded batches of at most
    `encode_batch_size` texts (as `LAM.encode` does). The actor computes on as many threads as
    Ray gave it CPUs (`num_cpus` of map_batches). Ray does not say which cores those are, so
    actors are not pinned: with the JAX backend, whose CPU thread pool only an affinity mask
    limits, run one actor per node with all its CPUs.
    """

    def __init__(self, model: str = "LAM-base-v1", backend: str = "auto", text_column: str = "text",
                 embedding_column: str = "embedding", token_count_column: str = "token_count",
                 encode_batch_size: int = 32, max_seq_length: int | None = None):
        limit_threads(assigned_cpus())
        from .facade import LAM

        self.model = LAM(model, backend=backend)
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        self.text_column = text_column
        self.embedding_column = embedding_column
        self.token_count_column = token_count_column
        self.encode_batch_size = encode_batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise KeyError(f"no {self.text_column!r} column in the dataset (columns: {', '.join(batch)})")
        texts = list(batch[self.text_column])
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{self.text_column!r} holds a {type(text).__name__} at position {position} "
                                "of a batch, not a string")
        result = embed_chunk(self.model, texts, self.encode_batch_size)
        return {**batch, self.embedding_column: result.sentence, self.token_count_column: result.token_counts}


def embed_dataset(ds, text_column: str = "text", model: str = "LAM-base-v1", backend: str = "auto",
                  num_actors: int = 1, cpus_per_actor: int = 1, batch_size: int | None = 256, encode_batch_size: int = 32,
                  embedding_column: str = "embedding", token_count_column: str = "token_count",
                  max_seq_length: int | None = None, embedder_class: type = LAMEmbedder):
    """`ds` with an `embedding_column` ((d,) float32 per row) and a `token_count_column`, computed
    by `num_actors` actors of `cpus_per_actor` CPUs, `batch_size` rows per call (None: one block per call).

    `model` is a built-in name or a model folder that every node can read. Actors that die
    are restarted by Ray and their batches retried.
    """
    require_ray()
    return ds.map_batches(embedder_class, batch_size=batch_size, batch_format="numpy", num_cpus=cpus_per_actor,
                          fn_constructor_kwargs={"model": model, "backend": backend, "text_column": text_column,
                                                 "embedding_column": embedding_column,
                                                 "token_count_column": token_count_column,
                                                 "encode_batch_size": encode_batch_size,
                                                 "max_seq_length": max_seq_length},
                          **actor_pool_arguments(num_actors))
