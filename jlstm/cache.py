"""A continuous cache over a language model's hidden states (Grave, Joulin and
Usunier, 2017, "Improving neural language models with a continuous cache").

The cache keeps the last ``size`` hidden states of each stream with the token
that followed each. At step t it predicts the tokens that followed the states
most like the current one, and mixes that with the model's own prediction::

    p_cache(v) = Σ_{i in window} softmax_i(θ h_t · h_i) [y_i = v]
    p(v)       = (1 - λ) softmax(logits_t)(v) + λ p_cache(v)

where the window holds the steps t - size .. t - 1 and y_i is the token after
step i (known at step t, as i < t). Nothing is learned or updated: like the
LSTM state, the cache carries what the stream has read so far, but it
remembers ``size`` steps exactly. It is how a fixed model picks up the names
and words of a text it never trained on, a play's names for instance.

At a step with no earlier step in its window (a stream's first), p is the
model's prediction alone. Steps where ``mask`` is False (padding) take up
their place in the window but are never matched.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class CacheState(NamedTuple):
    """The last ``size`` steps of each stream, in a ring: slot ``q % size`` holds step q.

    Shapes:
      keys: (B, size, H)         the hidden states
      targets: (B, size) int32   the token that followed each
      pos: (B, size) int32       the step each slot holds; -1 where none (or padding)
      step: () int32             the step the next chunk starts at
    """

    keys: Array
    targets: Array
    pos: Array
    step: Array


def init_cache(
    size: int, batch_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> CacheState:
    """An empty cache of ``size`` steps for ``batch_size`` streams."""
    for name, value in (("size", size), ("batch_size", batch_size), ("hidden_size", hidden_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return CacheState(
        keys=jnp.zeros((batch_size, size, hidden_size), dtype),
        targets=jnp.zeros((batch_size, size), jnp.int32),
        pos=jnp.full((batch_size, size), -1, jnp.int32),
        step=jnp.zeros((), jnp.int32),
    )


def cache_log_probs(
    cache: CacheState,
    hs: Array,
    targets: Array,
    logits: Array,
    *,
    theta: float | Array,
    lam: float | Array,
    mask: Array | None = None,
) -> tuple[Array, CacheState]:
    """Log probabilities of the model mixed with the cache, and the cache after the chunk.

    ``hs`` are the hidden states the ``logits`` came from, ``targets`` the
    next tokens (step t's target is the token read at step t + 1). The chunk's
    steps are keys for its later steps, and the returned cache holds the last
    ``size`` steps for the next chunk. ``theta`` sharpens the match, ``lam``
    weighs the cache (0 gives the model's ``log_softmax`` exactly).

    Shapes:
      cache: keys (B, size, H)
      hs: (B, T, H), targets: (B, T) int, logits: (B, T, V), mask: (B, T) bool
      -> log_probs (B, T, V), cache

    >>> cache = init_cache(100, batch_size=1, hidden_size=4)
    >>> hs, logits = jnp.ones((1, 3, 4)), jnp.zeros((1, 3, 10))  # a uniform model
    >>> log_probs, cache = cache_log_probs(
    ...     cache, hs, jnp.array([[7, 7, 2]]), logits, theta=1.0, lam=0.5
    ... )
    >>> round(float(jnp.exp(log_probs[0, 1, 7])), 4)  # 0.5 / 10 + 0.5 * (step 0 led to 7)
    0.55
    >>> round(float(jnp.exp(log_probs[0, 0, 7])), 4), int(cache.step)  # step 0: nothing to match
    (0.1, 3)
    """
    batch, size, hidden = cache.keys.shape
    if hs.ndim != 3 or hs.shape[0] != batch or hs.shape[2] != hidden:
        raise ValueError(
            f"hs must be (batch, time, hidden) = ({batch}, T, {hidden}) like the cache's keys "
            f"{cache.keys.shape}; got shape {hs.shape}"
        )
    steps = hs.shape[1]
    if targets.shape != hs.shape[:2]:
        raise ValueError(f"targets must be (batch, time) = {hs.shape[:2]}; got {targets.shape}")
    if logits.ndim != 3 or logits.shape[:2] != hs.shape[:2]:
        raise ValueError(
            f"logits must be (batch, time, vocab) with (batch, time) = {hs.shape[:2]}; "
            f"got shape {logits.shape}"
        )
    if mask is None:
        mask = jnp.ones(hs.shape[:2], bool)
    elif mask.shape != hs.shape[:2]:
        raise ValueError(f"mask must be (batch, time) = {hs.shape[:2]}; got {mask.shape}")
    for name, value in (("theta", theta), ("lam", lam)):
        if isinstance(value, int | float) and not value >= 0:
            raise ValueError(f"{name} must be >= 0; got {value!r}")
    if isinstance(lam, int | float) and lam > 1:
        raise ValueError(f"lam must be <= 1; got {lam!r}")

    hs = hs.astype(cache.keys.dtype)
    targets = targets.astype(jnp.int32)
    t = jnp.arange(steps)
    now = cache.step + t  # (T,) the step of each query
    # Earlier chunks' steps (in the ring) and this chunk's earlier steps, each
    # seen while it is one of the last ``size`` steps.
    ring_pos = cache.pos[:, None, :]  # (B, 1, size)
    ring_seen = (ring_pos >= 0) & (ring_pos >= (now - size)[None, :, None])
    chunk_seen = (t[None, :] < t[:, None]) & (t[None, :] >= t[:, None] - size)
    chunk_seen = chunk_seen[None] & mask[:, None, :]  # (B, T, T)
    scores = theta * jnp.concatenate(
        [jnp.einsum("bth,bsh->bts", hs, cache.keys), jnp.einsum("bth,buh->btu", hs, hs)], -1
    )
    visible = jnp.concatenate([ring_seen, chunk_seen], -1)  # (B, T, size + T)
    seen = visible.any(-1)  # (B, T): some earlier step to match
    scores = jnp.where(visible, scores, -jnp.inf)
    top = jnp.where(seen, scores.max(-1), 0.0)[..., None]
    weights = jnp.where(visible, jnp.exp(scores - top), 0.0)
    weights = weights / jnp.where(seen, weights.sum(-1), 1.0)[..., None]
    vocab = logits.shape[-1]
    key_targets = jnp.concatenate([cache.targets, targets], -1)  # (B, size + T)
    p_cache = jax.vmap(lambda w, y: jax.ops.segment_sum(w.T, y, vocab).T)(weights, key_targets)

    log_model = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    lam_t = jnp.where(seen, lam, 0.0)[..., None]
    from_cache = lam_t * p_cache
    some = from_cache > 0  # log 0 = -inf, kept out of the gradient
    log_cache = jnp.where(some, jnp.log(jnp.where(some, from_cache, 1.0)), -jnp.inf)
    log_probs = jnp.logaddexp(jnp.log1p(-lam_t) + log_model, log_cache)

    # Write the chunk's last min(T, size) steps into their slots.
    keep = min(steps, size)
    slots = (cache.step + steps - keep + jnp.arange(keep)) % size
    pos = jnp.where(mask, now[None, :], -1)[:, -keep:]
    new_cache = CacheState(
        keys=cache.keys.at[:, slots].set(hs[:, -keep:]),
        targets=cache.targets.at[:, slots].set(targets[:, -keep:]),
        pos=cache.pos.at[:, slots].set(pos),
        step=cache.step + steps,
    )
    return log_probs, new_cache
