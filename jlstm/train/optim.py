"""The optimizer: global-norm clipping, then Adam, AdamW or SGD with momentum.

Every number comes from ``config.optim``; this module holds no defaults.
"""

from __future__ import annotations

import functools

import jax
import optax

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine")


def make_schedule(optim) -> optax.Schedule:
    """The learning rate as a function of the step, from ``config.optim``.

    ``constant``: ``learning_rate`` throughout. ``warmup_cosine``: linear from 0
    to ``learning_rate`` over ``warmup_steps``, then a cosine down to
    ``learning_rate * final_lr_fraction`` at ``decay_steps`` (and flat after).

    >>> import ml_collections
    >>> o = ml_collections.ConfigDict(dict(learning_rate=1.0, schedule="warmup_cosine",
    ...     warmup_steps=10, decay_steps=110, final_lr_fraction=0.0))
    >>> s = make_schedule(o)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 60, 110)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    lr = float(optim.learning_rate)
    if optim.schedule == "constant":
        return _standard_promotion(optax.constant_schedule(lr))
    if optim.schedule == "warmup_cosine":
        return _standard_promotion(
            optax.warmup_cosine_decay_schedule(
                init_value=0.0,
                peak_value=lr,
                warmup_steps=int(optim.warmup_steps),
                decay_steps=int(optim.decay_steps),
                end_value=lr * float(optim.final_lr_fraction),
            )
        )
    raise ValueError(f"config.optim.schedule must be one of {SCHEDULES}; got {optim.schedule!r}")


def make_optimizer(optim) -> optax.GradientTransformation:
    """``config.optim`` -> an optax chain: clip by global norm, then the update rule.

    ``grad_clip_norm <= 0`` turns clipping off. ``adamw`` decays weights by
    ``weight_decay``; ``sgd`` uses ``momentum`` (0 for plain SGD).

    >>> import ml_collections
    >>> o = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3, schedule="constant",
    ...     warmup_steps=0, decay_steps=1, final_lr_fraction=0.0, grad_clip_norm=1.0,
    ...     weight_decay=0.0, momentum=0.0))
    >>> tx = make_optimizer(o)
    >>> type(tx).__name__
    'GradientTransformationExtraArgs'
    """
    schedule = make_schedule(optim)
    if optim.name == "adam":
        rule = optax.adam(schedule)
    elif optim.name == "adamw":
        rule = optax.adamw(schedule, weight_decay=float(optim.weight_decay))
    elif optim.name == "sgd":
        momentum = float(optim.momentum)
        rule = optax.sgd(schedule, momentum=momentum if momentum > 0 else None)
    else:
        raise ValueError(f"config.optim.name must be one of {OPTIMIZERS}; got {optim.name!r}")
    clip = float(optim.grad_clip_norm)
    chain = optax.chain(optax.clip_by_global_norm(clip), rule) if clip > 0 else optax.chain(rule)
    return optax.GradientTransformationExtraArgs(
        _standard_promotion(chain.init), _standard_promotion(chain.update)
    )


def _standard_promotion(fn):
    """Run ``fn`` under JAX's standard dtype promotion: optax mixes Python floats with
    int32 step counts, which ``jax_numpy_dtype_promotion="strict"`` would reject."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args, **kwargs)

    return wrapped
