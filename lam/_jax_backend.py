"""The JAX backend: runs `lam._jax_model` under one `jax.jit` on shape-bucketed token batches.

Bucketing: a batch of B texts padded to length L runs as a (bucket_batch(B), bucket_length(L))
batch of padded, masked rows and columns, and the outputs are sliced back. Masked tokens
change nothing (the delta rule passes its state through them, pooling skips them), so results
do not depend on the bucket; each bucket compiles once per process.
  - batch sizes: powers of two;
  - lengths: multiples of 2 up to 32, then multiples of 1/16 of the next power of two (of 4
    up to 64, of 8 up to 128, ...: 8 buckets per doubling, 96 up to 32768 tokens): at most one
    padded token up to 32 and 12.5% above. On the STS-B dev sentences (3000, mean 16 tokens)
    that is 16 buckets and 3.5% more tokens than padding each batch to its longest text;
    multiples of 4 would be 10 buckets and 9.4% more, and the JAX backend's time follows its
    token count.

Compilations persist across processes in `jax_compilation_cache_dir`: if the user has not
set one (e.g. through JAX_COMPILATION_CACHE_DIR), it is set to `lam.registry.cache_root()/"jax-cache"`
(`$LAM_CACHE/jax-cache`, else `~/.cache/lam/jax-cache`), created with mode 0o700, and bounded
to 1 GiB with file locking (see `enable_compilation_cache`). JAX reads the options at its first
compilation in the process.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax
import numpy as np

from ._jax_model import encode, pool, with_compute_precision
from .batching import pad_to
from .config import LAMHyperparameters
from .conversion import params_from_torch
from .registry import cache_root

MIN_LENGTH_STEP = 2
POWER_OF_TWO_STEPS = 16
PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu"}
TORCH_DEVICE_TYPES = {"gpu": "cuda", "tpu": "xla"}
COMPILATION_CACHE_BYTES = 1 << 30  # entries for LAM-base-v1 are about 0.15 MB each


def bucket_batch(batch: int) -> int:
    """The smallest power of two >= batch."""
    return 1 << max(0, batch - 1).bit_length()


def bucket_length(length: int) -> int:
    """The smallest multiple of max(2, 2^k / 16) >= length, for length in (2^(k-1), 2^k]."""
    step = max(MIN_LENGTH_STEP, (1 << max(0, length - 1).bit_length()) // POWER_OF_TWO_STEPS)
    return -(-max(length, 1) // step) * step


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at LAM's cache dir unless the user chose one.

    LAM's cache also gets a size bound (COMPILATION_CACHE_BYTES, least recently used entries
    evicted), which makes JAX lock the directory around every read and write: without it JAX
    writes entries in place, and a second process could read one half written. A bounded
    cache needs an access-time file beside every entry (JAX fails to write into a directory
    holding entries without one), so it never shares a directory with an unbounded cache.
    """
    if jax.config.jax_compilation_cache_dir:
        return None
    path = cache_root() / "jax-cache"
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            directory.mkdir(mode=0o700, exist_ok=True)  # another process may create it first
    jax.config.update("jax_compilation_cache_dir", os.fspath(path))
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", COMPILATION_CACHE_BYTES)
    return path


def resolve_device(device: str | None) -> jax.Device:
    """A JAX device from a torch-style name ("cpu", "cuda", "cuda:1", "gpu", "tpu:0"); None: JAX's default."""
    if device is None:
        return jax.devices()[0]
    platform, _, index = str(device).partition(":")
    try:
        return jax.devices(PLATFORM_ALIASES.get(platform, platform))[int(index or 0)]
    except (RuntimeError, IndexError) as err:
        raise RuntimeError(f"no device {device!r} is visible to JAX (it sees {[str(d) for d in jax.devices()]}); "
                           "use device='cpu'") from err


class JaxBackend:
    """Encodes padded batches: input_ids and attention_mask (B, L) int arrays to float32 arrays.

    `device_type` names the device as torch does ("cpu", "cuda"). `form` is the delta-rule form:
    the token scan on CPU, the chunkwise form on accelerators. `compiled_shapes` holds the
    (batch, length) buckets traced so far, each compiled (or loaded from the persistent cache) once.
    The wide linears compute in `compute_precision` (see `lam._jax_model.with_compute_precision`).
    """

    name = "jax"

    def __init__(self, config: LAMHyperparameters, tensors: dict[str, np.ndarray], device: str | None = None,
                 compute_precision: str = "float32"):
        enable_compilation_cache()
        self.config = config
        self.device = resolve_device(device)
        self.device_type = TORCH_DEVICE_TYPES.get(self.device.platform, self.device.platform)
        self.form = "scan" if self.device.platform == "cpu" else "chunk"
        self.compute_precision = compute_precision
        self.params = jax.device_put(with_compute_precision(params_from_torch(tensors, config), compute_precision),
                                     self.device)
        self.compiled_shapes: set[tuple[int, int]] = set()
        self._embed = jax.jit(functools.partial(self._traced_embed, config=config, form=self.form))

    def _traced_embed(self, params, input_ids, attention_mask, *, config, form):
        self.compiled_shapes.add(input_ids.shape)  # runs once per trace, i.e. per new bucket
        hidden = encode(params, input_ids, attention_mask, config, form)
        return hidden, pool(hidden, attention_mask)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token embeddings (B, L, d) and normalised sentence embeddings (B, d)."""
        batch, length = np.shape(input_ids)
        ids, mask = pad_to(input_ids, attention_mask, (bucket_batch(batch), bucket_length(length)),
                           self.config.pad_token_id)
        hidden, pooled = self._embed(self.params, jax.device_put(ids, self.device), jax.device_put(mask, self.device))
        return np.asarray(hidden)[:batch, :length], np.asarray(pooled)[:batch]
