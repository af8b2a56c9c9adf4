"""Data parallelism over a ``jax.sharding.Mesh``: batches split, parameters replicated.

One mesh axis, ``"data"``, spans every device of every process. Each batch's
leading (batch) axis is split over it; the train state is replicated, and the
compiler inserts the gradient all-reduce. Nothing here uses ``pmap``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jlstm.train.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def needs_lockstep(mesh: Mesh) -> bool:
    """Whether each step must finish before the next is dispatched.

    With several CPU devices in one process (``--xla_force_host_platform_device_count``),
    XLA's in-process collectives can deadlock when more than one program is in
    flight (most likely a device that runs ahead holds pool threads while it
    waits in a collective the other device cannot reach). Measured with 2
    devices on 2 cores: the charlm config aborted ("Termination timeout for
    all reduce") within 1500 steps when steps were queued, and ran when each
    step was awaited. GPU and TPU devices are left to queue steps as usual.
    """
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    return len(local) > 1 and local[0].platform == "cpu"


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "config.data.batch_size") -> None:
    """The batch must split evenly over the devices."""
    n = mesh.size
    if batch_size % n:
        raise ConfigError(
            f"{name} must be a multiple of the number of devices ({n}); got {batch_size}"
        )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading axis over the data axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def _global_array(x, sharding: NamedSharding) -> jax.Array:
    """A global array from a host value that every process holds in full."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def put_batch(batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Host batch (the same full batch on every process) -> arrays split over the mesh.

    Scalars (e.g. a BPTT reset flag) are replicated.
    """
    split, whole = batch_sharding(mesh), replicated(mesh)
    return {k: _global_array(v, split if np.ndim(v) else whole) for k, v in batch.items()}


def _is_spec(x) -> bool:
    return x is None or isinstance(x, PartitionSpec)


def put_tree(tree, mesh: Mesh, spec):
    """Place every leaf of ``tree`` on the mesh.

    ``spec`` is one ``PartitionSpec`` for every leaf (None: replicated), or a
    pytree prefix of ``tree`` holding one for each subtree (a carry whose
    parts split along different axes).
    """

    def place(s, subtree):
        target = NamedSharding(mesh, s if s is not None else PartitionSpec())
        return jax.tree.map(lambda x: _global_array(x, target), subtree)

    if _is_spec(spec):
        return place(spec, tree)
    return jax.tree.map(place, spec, tree, is_leaf=_is_spec)


def to_host(tree):
    """Replicated arrays (metrics, scalars of the state) -> NumPy, also on several hosts,
    where a global array is not fully addressable by any one process."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_shards[0].data  # replicated: every shard is the whole
        return np.asarray(x)

    return jax.tree.map(fetch, tree)


def state_shardings(state, mesh: Mesh, carry_spec: PartitionSpec | None):
    """A pytree of shardings for a :class:`~jlstm.train.steps.TrainState`: every leaf
    replicated but the carry's, split by ``carry_spec``."""
    whole = replicated(mesh)
    split = NamedSharding(mesh, carry_spec if carry_spec is not None else PartitionSpec())
    shardings = jax.tree.map(lambda _: whole, state)
    return shardings._replace(carry=jax.tree.map(lambda _: split, state.carry))


def put_state(state, mesh: Mesh, carry_spec: PartitionSpec | None = None):
    """Place a train state on the mesh: replicated, the carry split by ``carry_spec``."""
    shardings = state_shardings(state, mesh, carry_spec)
    return jax.tree.map(lambda x, s: _global_array(x, s), state, shardings)


def constrain_state(state, mesh: Mesh, carry_spec: PartitionSpec | None):
    """Inside jit: keep the state replicated (and the carry split) across steps."""
    return jax.lax.with_sharding_constraint(state, state_shardings(state, mesh, carry_spec))
