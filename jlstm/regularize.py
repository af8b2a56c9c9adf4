"""Regularisers that act inside the recurrence: recurrent (variational) dropout and zoneout.

- **Recurrent dropout** (Gal & Ghahramani 2016, "A Theoretically Grounded
  Application of Dropout in Recurrent Neural Networks"): one dropout mask per
  sequence, the same at every step, on the inputs x_t and on h_{t-1} (inverted:
  kept units are scaled by 1 / (1 - p)).
- **Zoneout** (Krueger et al. 2017, "Zoneout: Regularizing RNNs by Randomly
  Preserving Hidden Activations"): in training each unit of h (rate ``p_h``) and
  of c (``p_c``) keeps its previous value with that probability, a fresh draw
  every step: h_t = d_t ⊙ h_{t-1} + (1 − d_t) ⊙ h̃_t. At evaluation the
  expectation: h_t = p h_{t-1} + (1 − p) h̃_t.

Both are driven by a key (``dropout_key``), like the dropout between layers; no
key means evaluation. They change the recurrence itself, so they run on the
``"reference"`` implementation ("auto" picks it when they are active).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Noise(NamedTuple):
    """What the reference loop applies at each step (all optional).

    Shapes:
      h_mask: (B, H): multiplies h_{t-1} (recurrent dropout, already scaled)
      zoneout: {field: rate} for the state's fields ("h", "c")
      keep: {field: (T, B, H) bool}: where True the unit keeps its previous value
        (training); None at evaluation (the expectation is used)
    """

    h_mask: Array | None = None
    zoneout: dict | None = None
    keep: dict | None = None


def check_rate(name: str, rate) -> float:
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{name} must lie in [0, 1); got {rate!r}")
    return float(rate)


def zoneout_rates(zoneout) -> dict[str, float]:
    """``zoneout`` as ``{field: rate}``: a number is the rate of h and c alike, a pair is
    ``(p_h, p_c)``."""
    if isinstance(zoneout, tuple | list):
        if len(zoneout) != 2:
            raise ValueError(f"zoneout must be a rate or a pair (p_h, p_c); got {zoneout!r}")
        p_h, p_c = zoneout
    else:
        p_h = p_c = zoneout
    rates = {"h": check_rate("zoneout (h)", p_h), "c": check_rate("zoneout (c)", p_c)}
    return {k: v for k, v in rates.items() if v > 0.0}


def make_noise(
    key, *, state, steps: int, input_size: int, recurrent_dropout: float, zoneout
) -> tuple[Array | None, Noise | None]:
    """The input mask ``(B, I)`` (or None) and the :class:`Noise` of one call (or None when
    nothing is active). ``key`` None: evaluation."""
    p = check_rate("recurrent_dropout", recurrent_dropout)
    rates = {k: v for k, v in zoneout_rates(zoneout).items() if k in state._fields}
    if (p == 0.0 or key is None) and not rates:
        return None, None
    x_mask = h_mask = keep = None
    if key is not None:
        k_x, k_h, k_z = jax.random.split(key, 3)
        batch, hidden = state.h.shape
        if p > 0.0:
            scale = 1.0 / (1.0 - p)
            keep_x = jax.random.bernoulli(k_x, 1.0 - p, (batch, input_size))
            keep_h = jax.random.bernoulli(k_h, 1.0 - p, (batch, hidden))
            x_mask = jnp.where(keep_x, scale, 0.0).astype(state.h.dtype)
            h_mask = jnp.where(keep_h, scale, 0.0).astype(state.h.dtype)
        if rates:
            keys = jax.random.split(k_z, len(rates))
            # One draw per step index (fold_in), so padding a sequence changes no draw.
            keep = {
                field: _per_step(k, rate, getattr(state, field).shape, steps)
                for k, (field, rate) in zip(keys, rates.items(), strict=True)
            }
    return x_mask, Noise(h_mask, rates or None, keep)


def _per_step(key, rate: float, shape, steps: int) -> Array:
    """(T, *shape) Bernoulli(rate) draws, one per step index (fold_in): padding a sequence
    changes no draw."""
    draw = lambda t: jax.random.bernoulli(jax.random.fold_in(key, t), rate, shape)
    return jax.vmap(draw)(jnp.arange(steps))


def before_step(noise: Noise | None, state):
    """The state the cell reads: h_{t-1} under the recurrent-dropout mask."""
    if noise is None or noise.h_mask is None:
        return state
    return state._replace(h=state.h * noise.h_mask.astype(state.h.dtype))


def after_step(noise: Noise | None, old, new, keep_t: dict | None):
    """Zoneout: each zoned field mixes its previous and new value (a draw in training, the
    expectation at evaluation)."""
    if noise is None or not noise.zoneout:
        return new
    fields = new._asdict()
    for field, rate in noise.zoneout.items():
        before, after = getattr(old, field), fields[field]
        if keep_t is None:
            fields[field] = rate * before + (1.0 - rate) * after
        else:
            fields[field] = jnp.where(keep_t[field], before, after)
    return type(new)(**fields)
