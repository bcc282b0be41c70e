"""Argument checks shared by the models; each raises ValueError naming the problem."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def check_positive_ints(**values) -> None:
    """Each keyword's value must be a positive integer; the error names the keyword."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_modality_dims(
    dim_modalities: Sequence[int], dim_outs: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate per-modality widths; returns them as tuples."""
    dim_modalities, dim_outs = tuple(dim_modalities), tuple(dim_outs)
    if not dim_modalities:
        raise ValueError("dim_modalities must name at least one modality")
    if len(dim_outs) != len(dim_modalities):
        raise ValueError(
            f"dim_outs has {len(dim_outs)} entries but there are {len(dim_modalities)} modalities"
        )
    check_positive_ints(**{f"dim_modalities[{i}]": dim for i, dim in enumerate(dim_modalities)})
    check_positive_ints(**{f"dim_outs[{i}]": dim for i, dim in enumerate(dim_outs)})
    return dim_modalities, dim_outs


def check_modality_tokens(modality_tokens, dim_modalities: tuple[int, ...]) -> tuple[jax.Array, ...]:
    """Check one example's tokens: one (seq_len_i, dim_modalities[i]) array per modality."""
    if not isinstance(modality_tokens, (tuple, list)):
        raise ValueError(
            "modality_tokens must be a tuple or list with one (seq_len, dim) array per modality, "
            f"got {type(modality_tokens).__name__}"
        )
    if len(modality_tokens) != len(dim_modalities):
        raise ValueError(
            f"expected {len(dim_modalities)} modality token arrays, got {len(modality_tokens)}"
        )
    tokens = tuple(jnp.asarray(x) for x in modality_tokens)
    for index, (x, dim) in enumerate(zip(tokens, dim_modalities)):
        if x.ndim != 2:
            raise ValueError(
                f"modality {index} tokens must be (seq_len, {dim}) for a single example, got shape "
                f"{x.shape}; use jax.vmap for batches"
            )
        if x.shape[-1] != dim:
            raise ValueError(f"modality {index} tokens have feature dim {x.shape[-1]}, expected {dim}")
        if x.shape[0] == 0:
            raise ValueError(f"modality {index} has no tokens")
    return tokens


def check_attention_mask(attention_mask, total_seq: int) -> jax.Array | None:
    """Check a boolean (total_seq, total_seq) mask; None means full attention."""
    if attention_mask is None:
        return None
    mask = jnp.asarray(attention_mask)
    if mask.shape != (total_seq, total_seq):
        raise ValueError(
            f"attention_mask must have shape ({total_seq}, {total_seq}) (total tokens over all "
            f"modalities), got {mask.shape}"
        )
    if mask.dtype != jnp.bool_:
        raise ValueError(f"attention_mask must be boolean (True = may attend), got dtype {mask.dtype}")
    return mask


def check_timesteps(timestep, num_conditions: int, multiple_conditions: bool) -> tuple[jax.Array, ...]:
    """Normalise `timestep` to a tuple of float32 scalar arrays, one per conditioning variable.

    Python numbers become arrays here, before any compilation, so a new value is
    new data rather than a new constant to compile.
    """
    if multiple_conditions:
        if not isinstance(timestep, (tuple, list)):
            raise ValueError(
                f"this model has {num_conditions} conditioning variables: pass timestep as a tuple "
                f"of {num_conditions} scalars, got {type(timestep).__name__}"
            )
        if len(timestep) != num_conditions:
            raise ValueError(
                f"expected a tuple of {num_conditions} timesteps (one per conditioning variable), "
                f"got {len(timestep)}"
            )
        timesteps = tuple(timestep)
    elif isinstance(timestep, (tuple, list)):
        raise ValueError(
            "this model has a single conditioning variable: pass timestep as a scalar, not a "
            f"{type(timestep).__name__}"
        )
    else:
        timesteps = (timestep,)
    for index, t in enumerate(timesteps):
        if jnp.shape(t) != ():
            raise ValueError(
                f"timestep {index} must be a scalar per example, got shape {jnp.shape(t)}; "
                "use jax.vmap for batches"
            )
    return tuple(jnp.asarray(t, dtype=jnp.float32) for t in timesteps)
