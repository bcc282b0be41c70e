"""The torch backend: runs `LAMModel` (Cython delta-rule kernel on CPU) on padded token batches."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import torch

from . import _cython
from ._torch_model import LAMModel, pool
from ._torch_precision import prepare_inference
from .config import LAMHyperparameters, pretrained_config


class TorchBackend:
    """Encodes padded batches: input_ids and attention_mask (B, L) int arrays to float32 arrays.

    The wide linears run in `compute_precision` (see `lam._torch_precision`).
    """

    name = "torch"

    def __init__(self, config: LAMHyperparameters, tensors: dict[str, np.ndarray], device: str | None = None,
                 compute_precision: str = "float32"):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.device_type = self.device.type
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"no CUDA device is visible to torch; use device='cpu' (asked for device={device!r})")
        if self.device.type == "cpu" and not _cython.AVAILABLE:
            warnings.warn(f"LAM: the compiled Cython kernel is not available ({_cython.IMPORT_ERROR}); "
                          "the torch backend runs the slower pure-torch chunkwise form", stacklevel=4)
        self.model = LAMModel(pretrained_config(config))
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
        self.model.eval().to(self.device)
        prepare_inference(self.model, compute_precision)
        self.compute_precision = compute_precision

    @property
    def form(self) -> str:
        """The delta-rule form inference runs: "cython" on CPU when it is built, else "chunk"."""
        probe = torch.empty(0, device=self.device)
        with torch.inference_mode():
            return self.model.resolve_form(probe)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token embeddings (B, L, d) and normalised sentence embeddings (B, d).

        A batch of at most ONE_THREAD_TOKENS padded tokens runs on one torch thread (see there)."""
        ids = torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64)).to(self.device)
        mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64)).to(self.device)
        small = self.device.type == "cpu" and ids.numel() <= ONE_THREAD_TOKENS
        with torch.inference_mode(), one_torch_thread(small):
            hidden = self.model.encode(ids, mask)
            pooled = pool(hidden, mask)
        return hidden.float().cpu().numpy(), pooled.float().cpu().numpy()


# A short query makes a few hundred small ops, each a parallel region in which torch's OpenMP
# threads wait for each other; when the CPU is shared they wait for a time slice. One 16-token
# query on 2 cores at a load average of 4-5, 80 interleaved repeats: p50 30 ms on one thread
# against 705 ms on two (int8). Not measured on a quiet machine.
ONE_THREAD_TOKENS = 256


@contextmanager
def one_torch_thread(enabled: bool = True):
    """Within the block the calling thread's torch ops (and LAM's compiled kernels) use one thread.

    torch's thread count is an OpenMP setting of the calling thread; it is restored on exit."""
    threads = torch.get_num_threads()
    if not enabled or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
