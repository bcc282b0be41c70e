"""How long inputs split into token blocks, shared by both backends.

Token-wise parts of a layer (projections, convolution, gates, FFN) run on blocks of about
`block_tokens` tokens over the batch, so that their temporaries stay small however long the
text: fresh large allocations cost a page fault per 4 KiB page (in torch, 32k-token texts ran
1.8x slower per token than 512-token ones without blocks), and XLA keeps them all alive.
The delta rule itself always sees the whole sequence.
"""

from __future__ import annotations

DEFAULT_BLOCK_TOKENS = 4096


def block_layout(batch: int, length: int, block_tokens: int | None) -> tuple[int, int]:
    """(count, size): `count` blocks of `size` positions cover [0, length), count * size >= length.

    One block when block_tokens is None or batch * length <= block_tokens.
    """
    if block_tokens is None or batch * length <= block_tokens:
        return 1, length
    if block_tokens < 1:
        raise ValueError(f"block_tokens must be a positive int or None, got {block_tokens}")
    count = -(-length // max(1, block_tokens // batch))
    return count, -(-length // count)
