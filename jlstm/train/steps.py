"""The train state and the jitted train and eval steps.

A model is split once with ``nnx.split`` into a static graph definition and
its arrays; the steps are plain ``jax.jit`` functions of those arrays (cheaper
per call than ``nnx.jit`` at small shapes) that ``nnx.merge`` the model back
inside the trace. The train step donates the state it receives.

Contracts for the task functions (see :mod:`jlstm.train.tasks`):

- ``loss_fn(model, batch, carry, dropout_key) -> (loss, (metrics, new_carry))``:
  a scalar loss to minimise, a dict of scalar metrics, and the state carried to
  the next step (truncated BPTT; ``None`` for tasks that carry nothing).
- ``eval_fn(model, batch, carry) -> ({name: (mean, count)}, carry)``: each
  metric's mean over the batch's real items and how many there were, so that
  batches combine as ``sum(mean * count) / sum(count)``; the carry as above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jlstm.train import sharding as sharding_lib

Array = jax.Array
LossFn = Callable[..., tuple[Array, tuple[dict[str, Array], Any]]]
EvalFn = Callable[..., tuple[dict[str, tuple[Array, Array]], Any]]


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly where it stopped.

    The data position is not here: every batch is a pure function of
    ``(config.seed, step)``, so ``step`` is the data position.

    Attributes:
      step: int32 scalar, the number of steps taken.
      params: the model's ``nnx.Param`` arrays (an ``nnx.State``).
      model_state: the model's other variables (an ``nnx.State``, often empty).
      opt_state: the optax state.
      key: the root PRNG key as raw ``uint32`` data; step ``s`` uses
        ``fold_in(key, s)``.
      carry: state carried from one step to the next (the LSTM state in
        truncated BPTT), or ``None``.
      bad_step: int32 scalar, the ``step`` value at the first update whose loss
        or gradient norm was not finite (that update was skipped), or -1.
    """

    step: Array
    params: nnx.State
    model_state: nnx.State
    opt_state: optax.OptState
    key: Array
    carry: Any
    bad_step: Array


def init_train_state(
    model: nnx.Module, optimizer: optax.GradientTransformation, key: Array, carry: Any = None
) -> tuple[nnx.GraphDef, TrainState]:
    """Split ``model`` and build the state at step 0; returns ``(graphdef, state)``.

    ``key`` (a typed PRNG key) is the root of the per-step randomness.
    """
    graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=optimizer.init(params),
        key=jax.random.key_data(key),
        carry=carry,
        bad_step=jnp.full((), -1, jnp.int32),
    )
    # Own buffers for every leaf: the train step donates them, and a buffer shared
    # by two leaves (h and c of a zero state, say) cannot be donated twice.
    return graphdef, jax.tree.map(lambda a: jnp.array(a, copy=True), state)


def step_key(key_data: Array, step: Array) -> Array:
    """The PRNG key of one step: ``fold_in(root, step)``."""
    return jax.random.fold_in(jax.random.wrap_key_data(key_data), step)


def make_train_step(
    graphdef: nnx.GraphDef,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    mesh: jax.sharding.Mesh | None = None,
    carry_spec: jax.sharding.PartitionSpec | None = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict[str, Array]]]:
    """Build ``train_step(state, batch) -> (state, metrics)``, jitted, ``state`` donated.

    One step: the loss and its gradient by autodiff (through the scanned LSTM:
    backpropagation through time), the global gradient norm, the optimizer
    update. When the loss or the gradient norm is not finite the update is
    skipped and ``bad_step`` records the step, so the parameters stay the last
    finite ones. ``metrics`` holds ``loss``, ``grad_norm`` and the task's own.

    With a ``mesh`` the state is kept replicated and the carry sharded by
    ``carry_spec`` (the batch arrives sharded over the mesh's data axis).
    """

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict[str, Array]]:
        dropout_key = step_key(state.key, state.step)

        def compute_loss(params):
            model = nnx.merge(graphdef, params, state.model_state)
            return loss_fn(model, batch, state.carry, dropout_key)

        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
        (loss, (metrics, carry)), grads = grad_fn(state.params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
        params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
        carry = keep(carry, state.carry)
        bad_step = jnp.where((state.bad_step < 0) & ~ok, state.step, state.bad_step)
        new_state = state._replace(
            step=state.step + 1, params=params, opt_state=opt_state, carry=carry, bad_step=bad_step
        )
        if mesh is not None:
            new_state = sharding_lib.constrain_state(new_state, mesh, carry_spec)
        return new_state, {"loss": loss, "grad_norm": grad_norm, **metrics}

    return jax.jit(train_step, donate_argnums=0)


def make_eval_step(graphdef: nnx.GraphDef, eval_fn: EvalFn) -> Callable:
    """Build ``eval_step(state, batch, carry) -> (metrics, carry)``, jitted, no dropout.

    ``metrics`` maps each name to ``(mean, count)``; the carry goes from one
    evaluation batch to the next (``None`` for most tasks).
    """

    def eval_step(state: TrainState, batch: dict, carry: Any):
        model = nnx.merge(graphdef, state.params, state.model_state)
        return eval_fn(model, batch, carry)

    return jax.jit(eval_step)
