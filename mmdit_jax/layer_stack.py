"""Transformer blocks stored stacked (one leading depth axis per parameter) and run over that axis.

One parameter layout serves every execution mode: a Python loop over the depth
axis (unrolled), `jax.lax.scan` (one compiled block body whatever the depth),
each optionally under `jax.checkpoint` (activations recomputed in the backward
pass instead of stored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp

Block = TypeVar("Block", bound=eqx.Module)
Carry = TypeVar("Carry")


def init_stacked_blocks(block_cls: type[Block], depth: int, key: jax.Array, **config) -> Block:
    """`depth` blocks `block_cls(**config, key=k)`, one per key of `jax.random.split(key, depth)`, stacked.

    Built eagerly: each parameter shape's random initialiser compiles once and is
    reused by every later block (one jitted initialisation of the whole stack takes
    longer to compile).
    """
    return stack_blocks([block_cls(**config, key=k) for k in jax.random.split(key, depth)])


def stack_blocks(blocks: Sequence[Block]) -> Block:
    """Blocks of one structure -> one block whose arrays have a leading (len(blocks),) axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *blocks)


def stack_depth(stacked: eqx.Module) -> int:
    """Length of the leading depth axis of a stacked block."""
    return jax.tree_util.tree_leaves(stacked)[0].shape[0]


def block_at(stacked: Block, index: int) -> Block:
    """The `index`-th block of a stacked block."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], stacked)


def unstack_blocks(stacked: Block) -> tuple[Block, ...]:
    """Inverse of `stack_blocks`."""
    return tuple(block_at(stacked, index) for index in range(stack_depth(stacked)))


def run_blocks(
    stacked: Block, carry: Carry, step: Callable[[Block, Carry], Carry], *, scan: bool, remat: bool
) -> Carry:
    """Fold `carry = step(block, carry)` over the blocks in depth order.

    scan: one `jax.lax.scan` over the depth axis instead of a Python loop; the
        carry must keep its shapes and dtypes from block to block.
    remat: wrap `step` in `jax.checkpoint`, storing only each block's input for
        the backward pass.
    """
    if remat:
        step = jax.checkpoint(step)
    if scan:
        carry, _ = jax.lax.scan(lambda state, block: (step(block, state), None), carry, stacked)
        return carry
    for index in range(stack_depth(stacked)):
        carry = step(block_at(stacked, index), carry)
    return carry
