"""A few optax steps under plain `jax.jit` on a toy flow-matching task reduce the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmdit_jax import MMDiT, block_modality_attention, full_attention_mask

OBS_LEN, OBS_DIM, ACT_LEN, ACT_DIM, BATCH = 5, 8, 4, 6, 8


def test_flow_matching_loss_decreases(tiny):
    """Modality 0 is a conditioning observation, modality 1 the data to generate."""
    rng = np.random.default_rng(0)
    observations = jnp.asarray(rng.standard_normal((BATCH, OBS_LEN, OBS_DIM)), dtype=jnp.float32)
    targets = jnp.tanh(observations[:, :1, :ACT_DIM] * jnp.linspace(0.5, 1.5, ACT_LEN)[:, None])
    noise = jnp.asarray(rng.standard_normal(targets.shape), dtype=jnp.float32)
    times = jnp.asarray(rng.uniform(size=BATCH), dtype=jnp.float32)
    noisy = (1 - times[:, None, None]) * noise + times[:, None, None] * targets
    seq_lens = (OBS_LEN, ACT_LEN)
    mask = block_modality_attention(full_attention_mask(seq_lens), seq_lens, query_modality=0, key_modality=1)

    dims = (OBS_DIM, ACT_DIM)
    model = MMDiT(1, dims, dims, dim_cond=16, timestep_embed_dim=8, **tiny, key=jax.random.PRNGKey(0))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(model)

    def loss_fn(model):
        forward = jax.vmap(lambda obs, x, t: model((obs, x), t, mask)[1])
        velocity = forward(observations, noisy, times)
        return jnp.mean(jnp.square(velocity - (targets - noise)))

    @jax.jit
    def train_step(model, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optax.apply_updates(model, updates), opt_state, loss

    losses = []
    for _ in range(25):
        model, opt_state, loss = train_step(model, opt_state)
        losses.append(float(loss))
    assert all(jnp.isfinite(jnp.asarray(losses)))
    assert losses[-1] < 0.8 * losses[0]
