"""The implementations that ``bench.py`` times, each behind one small interface.

Every implementation is one LSTM layer (or one GRU layer, or the 2-layer
bidirectional LSTM stack), float32, batch-first ``(B, T, I)`` input, zero
initial state, and builds two closures for a shape:

* ``fwd()``: all hidden states (no gradient bookkeeping);
* ``fwd_bwd()``: the gradient of ``sum(outputs)`` with respect to every
  parameter and the input.

Both block until the result is ready. JAX implementations are ``jax.jit``-ed
functions of ``(params, xs)``; PyTorch runs ``torch.nn.LSTM`` / ``torch.nn.GRU``
with 2 threads (oneDNN's fused kernels). jlstm's rows differ only in
``implementation=`` (:mod:`jlstm.implementation`). An implementation that cannot
run here (a package missing, or jlstm's CPU kernel unavailable) raises
:class:`Unavailable` and the benchmark notes it and goes on.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = {  # B, T, I, H (shared/PEERS.md)
    "S1": (32, 128, 64, 128),
    "S2": (64, 256, 128, 256),
    "S3": (16, 1024, 32, 64),
    "S4": (256, 64, 256, 512),
    "S5": (1, 512, 32, 128),
}


class Unavailable(Exception):
    """An implementation cannot run on this machine; the message says why."""


class Missing(Unavailable):
    """The package an implementation needs is not installed."""

    def __str__(self) -> str:
        return f"`{self.args[0]}` is not installed"


@dataclass
class Built:
    """One implementation, built for one shape."""

    fwd: Callable[[], object]
    fwd_bwd: Callable[[], object]
    first_fwd_s: float  # first call: trace + compile + run
    first_fwd_bwd_s: float


def _first_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _jax_built(apply, params, xs) -> Built:
    """``apply(params, xs) -> hs``; jit it and its gradient w.r.t. (params, xs)."""
    fwd = jax.jit(apply)
    grad = jax.jit(jax.grad(lambda p, x: apply(p, x).sum(), argnums=(0, 1)))
    run_fwd = lambda: jax.block_until_ready(fwd(params, xs))
    run_grad = lambda: jax.block_until_ready(grad(params, xs))
    return Built(run_fwd, run_grad, _first_call(run_fwd), _first_call(run_grad))


def _inputs(batch, steps, inputs, seed=1):
    return jax.random.normal(jax.random.key(seed), (batch, steps, inputs), jnp.float32)


# --------------------------------------------------------------------------- one layer


def jlstm_layer(
    batch, steps, inputs, hidden, *, implementation="auto", dtype=None, remat=False, cell="lstm"
) -> Built:
    """One jlstm layer of ``cell`` run by ``implementation`` ("auto", "reference", "xla"
    or "cpu_kernel"; see :mod:`jlstm.implementation`)."""
    import jlstm

    params = jlstm.cells.get(cell).init(jax.random.key(0), inputs, hidden)

    def apply(p, x):
        return jlstm.layer(p, x, implementation=implementation, dtype=dtype, remat=remat)[0]

    why = why_not(implementation, batch, steps, inputs, hidden, cell=cell, dtype=dtype)
    if why is not None:
        raise Unavailable(why)
    return _jax_built(apply, params, _inputs(batch, steps, inputs))


def _call(batch, steps, inputs, hidden, *, cell="lstm", dtype=None):
    """The :class:`jlstm.implementation.Call` that ``jlstm_layer`` makes (float32 params)."""
    import jlstm
    from jlstm import implementation

    f32 = np.dtype(np.float32)
    cell = jlstm.cells.get(cell)
    init = functools.partial(cell.init, input_size=inputs, hidden_size=hidden)
    n_leaves = len(jax.tree.leaves(jax.eval_shape(init, jax.random.key(0))))
    return implementation.Call(
        cell=cell,
        batch=batch,
        steps=steps,
        input_size=inputs,
        hidden=hidden,
        param_dtypes=(f32,) * n_leaves,
        state_dtype=f32,
        compute=np.dtype(dtype or f32),
        backend=jax.default_backend(),
        devices=jax.device_count(),
    )


def auto_choice(batch, steps, inputs, hidden, *, cell="lstm", dtype=None) -> str:
    """What ``implementation="auto"`` runs for one layer of this shape here."""
    from jlstm import implementation

    return implementation.choose(
        "auto", _call(batch, steps, inputs, hidden, cell=cell, dtype=dtype)
    )


def why_not(name, batch, steps, inputs, hidden, *, cell="lstm", dtype=None) -> str | None:
    """Why implementation ``name`` cannot run one layer of this shape here (None: it can)."""
    from jlstm import implementation

    if name == "auto":
        return None
    return implementation.why_not(name, _call(batch, steps, inputs, hidden, cell=cell, dtype=dtype))


def torch_lstm(batch, steps, inputs, hidden) -> Built:
    try:
        import torch
    except ImportError as e:
        raise Missing("torch") from e
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torch.nn.LSTM(inputs, hidden, batch_first=True)
    xs = torch.randn(batch, steps, inputs)
    xs_grad = xs.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            return model(xs)[0]

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        xs_grad.grad = None
        model(xs_grad)[0].sum().backward()

    return Built(fwd, fwd_bwd, _first_call(fwd), _first_call(fwd_bwd))


def flax_linen(batch, steps, inputs, hidden) -> Built:
    try:
        import flax.linen as nn
    except ImportError as e:
        raise Missing("flax") from e
    model = nn.RNN(nn.OptimizedLSTMCell(hidden))
    xs = _inputs(batch, steps, inputs)
    params = model.init(jax.random.key(0), xs)
    return _jax_built(lambda p, x: model.apply(p, x), params, xs)


def flax_nnx(batch, steps, inputs, hidden) -> Built:
    try:
        from flax import nnx
    except ImportError as e:
        raise Missing("flax") from e
    # rngs=False and an explicit carry: with the default carry RNG, jax.grad
    # through nnx.RNN raises a TraceContextError (see shared/PEERS.md).
    model = nnx.RNN(nnx.OptimizedLSTMCell(inputs, hidden, rngs=nnx.Rngs(0)), rngs=False)
    graphdef, state = nnx.split(model)
    zeros = jnp.zeros((batch, hidden), jnp.float32)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x, initial_carry=(zeros, zeros))

    return _jax_built(apply, state, _inputs(batch, steps, inputs))


def haiku_lstm(batch, steps, inputs, hidden) -> Built:
    try:
        import haiku as hk
    except ImportError as e:
        raise Missing("dm-haiku") from e

    def forward(x):
        core = hk.LSTM(hidden)
        hs, _ = hk.dynamic_unroll(core, x, core.initial_state(batch), time_major=False)
        return hs

    model = hk.without_apply_rng(hk.transform(forward))
    xs = _inputs(batch, steps, inputs)
    params = model.init(jax.random.key(0), xs)
    return _jax_built(model.apply, params, xs)


def equinox_lstm(batch, steps, inputs, hidden) -> Built:
    try:
        import equinox as eqx
    except ImportError as e:
        raise Missing("equinox") from e
    cell = eqx.nn.LSTMCell(inputs, hidden, key=jax.random.key(0))
    params, static = eqx.partition(cell, eqx.is_array)
    zeros = jnp.zeros((hidden,), jnp.float32)

    def apply(params, x):
        cell = eqx.combine(params, static)

        def one(seq):  # (T, I) -> (T, H)
            def step(carry, x_t):
                carry = cell(x_t, carry)
                return carry, carry[0]

            return jax.lax.scan(step, (zeros, zeros), seq)[1]

        return jax.vmap(one)(x)

    return _jax_built(apply, params, _inputs(batch, steps, inputs))


LAYER_IMPLS: dict[str, Callable[..., Built]] = {
    "jlstm": jlstm_layer,
    "torch.nn.LSTM": torch_lstm,
    "flax.linen RNN(OptimizedLSTMCell)": flax_linen,
    "flax.nnx RNN(OptimizedLSTMCell)": flax_nnx,
    "haiku LSTM + dynamic_unroll": haiku_lstm,
    "equinox LSTMCell, vmap over scan": equinox_lstm,
}
JAX_PEERS = tuple(k for k in LAYER_IMPLS if k not in ("jlstm", "torch.nn.LSTM"))


# --------------------------------------------------------------------------- one GRU layer


def jlstm_gru(batch, steps, inputs, hidden) -> Built:
    """jlstm's GRU (torch.nn.GRU's equations), ``implementation="auto"`` (the reference
    loop: the GRU has no other yet)."""
    return jlstm_layer(batch, steps, inputs, hidden, cell="gru")


def torch_gru(batch, steps, inputs, hidden) -> Built:
    try:
        import torch
    except ImportError as e:
        raise Missing("torch") from e
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torch.nn.GRU(inputs, hidden, batch_first=True)
    xs = torch.randn(batch, steps, inputs)
    xs_grad = xs.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            return model(xs)[0]

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        xs_grad.grad = None
        model(xs_grad)[0].sum().backward()

    return Built(fwd, fwd_bwd, _first_call(fwd), _first_call(fwd_bwd))


def flax_linen_gru(batch, steps, inputs, hidden) -> Built:
    try:
        import flax.linen as nn
    except ImportError as e:
        raise Missing("flax") from e
    model = nn.RNN(nn.GRUCell(hidden))
    xs = _inputs(batch, steps, inputs)
    params = model.init(jax.random.key(0), xs)
    return _jax_built(lambda p, x: model.apply(p, x), params, xs)


def flax_nnx_gru(batch, steps, inputs, hidden) -> Built:
    try:
        from flax import nnx
    except ImportError as e:
        raise Missing("flax") from e
    model = nnx.RNN(nnx.GRUCell(inputs, hidden, rngs=nnx.Rngs(0)), rngs=False)
    graphdef, state = nnx.split(model)
    zeros = jnp.zeros((batch, hidden), jnp.float32)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x, initial_carry=zeros)

    return _jax_built(apply, state, _inputs(batch, steps, inputs))


GRU_IMPLS: dict[str, Callable[..., Built]] = {
    "jlstm GRU": jlstm_gru,
    "torch.nn.GRU": torch_gru,
    "flax.linen RNN(GRUCell)": flax_linen_gru,
    "flax.nnx RNN(GRUCell)": flax_nnx_gru,
}
GRU_JAX_PEERS = tuple(k for k in GRU_IMPLS if k.startswith("flax"))


# --------------------------------------------------------------------------- 2-layer bidirectional


def random_lengths(batch, steps, seed=0) -> np.ndarray:
    """Lengths spread over [T/4, T], the longest equal to T (sorted order not assumed)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(steps // 4, steps + 1, size=batch)
    lengths[0] = steps
    return lengths.astype(np.int32)


def jlstm_bidir(batch, steps, inputs, hidden, lengths, *, implementation="auto") -> Built:
    from jlstm.stack import init_stack_params, stack

    why = why_not(implementation, batch, steps, inputs, hidden)
    if why is not None:
        raise Unavailable(why)
    params = init_stack_params(jax.random.key(0), inputs, hidden, num_layers=2, bidirectional=True)
    n = jnp.asarray(lengths)

    def apply(p, x):
        return stack(p, x, lengths=n, implementation=implementation)[0]

    return _jax_built(apply, params, _inputs(batch, steps, inputs))


def torch_bidir(batch, steps, inputs, hidden, lengths) -> Built:
    try:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    except ImportError as e:
        raise Missing("torch") from e
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torch.nn.LSTM(inputs, hidden, num_layers=2, bidirectional=True, batch_first=True)
    xs = torch.randn(batch, steps, inputs)
    xs_grad = xs.clone().requires_grad_(True)
    n = torch.as_tensor(lengths, dtype=torch.int64)

    def run(x):
        packed = pack_padded_sequence(x, n, batch_first=True, enforce_sorted=False)
        out, _ = model(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=steps)[0]

    def fwd():
        with torch.no_grad():
            return run(xs)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        xs_grad.grad = None
        run(xs_grad).sum().backward()

    return Built(fwd, fwd_bwd, _first_call(fwd), _first_call(fwd_bwd))


def flax_linen_bidir(batch, steps, inputs, hidden, lengths) -> Built:
    try:
        import flax.linen as nn
    except ImportError as e:
        raise Missing("flax") from e

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x, seq_lengths):
            for _ in range(2):
                x = nn.Bidirectional(
                    nn.RNN(nn.OptimizedLSTMCell(hidden)), nn.RNN(nn.OptimizedLSTMCell(hidden))
                )(x, seq_lengths=seq_lengths)
            mask = jnp.arange(x.shape[1])[None, :] < seq_lengths[:, None]
            return jnp.where(mask[:, :, None], x, 0.0)

    model = Stack()
    xs = _inputs(batch, steps, inputs)
    n = jnp.asarray(lengths)
    params = model.init(jax.random.key(0), xs, n)
    return _jax_built(lambda p, x: model.apply(p, x, n), params, xs)


BIDIR_IMPLS: dict[str, Callable[..., Built]] = {
    "jlstm.stack": jlstm_bidir,
    "jlstm.stack, implementation='reference'": functools.partial(
        jlstm_bidir, implementation="reference"
    ),
    "torch.nn.LSTM (packed)": torch_bidir,
    "flax.linen Bidirectional(RNN)": flax_linen_bidir,
}
