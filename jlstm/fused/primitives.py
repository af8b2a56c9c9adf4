"""The LSTM's loops as JAX primitives, so that every transformation has a rule.

Three primitives, each with a pure-JAX implementation in :mod:`jlstm.fused.loops`:

- ``forward_p``: the forward loop (with or without saving what the derivatives need);
- ``tangent_p``: the tangent loop, linear in ``(U, dh_0, dc_0)``;
- ``adjoint_p``: the adjoint loop, linear in ``(dys, dh_T, dc_T)``: the transpose of
  ``tangent_p``, and ``tangent_p`` is the transpose of it.

Rules, the same for the three:

- **lowering**: on the CPU backend, with ``kernel=True``, the C++ kernel
  (:mod:`jlstm.fused.kernel`), which is built then, not while tracing; for every
  other platform, and when lowering for ``jax.export`` (whose artefacts must not
  hold a custom call), the ``lax.scan`` of :mod:`jlstm.fused.loops`.
- **JVP**: ``jax.jvp`` of the pure-JAX loop, so derivatives of any order are the
  scan's (the kernels' first derivatives are the primitives themselves).
- **transpose** (the two linear ones): each other, so reverse mode runs the
  adjoint loop (the kernel on the CPU) and forward mode the tangent loop.
- **batching**: a ``vmap`` over anything but the weights folds the mapped axis
  into the batch rows (rows are independent), one call for all; a ``vmap``
  over the weights runs one call per element (``lax.map``).
"""

from __future__ import annotations

import functools

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax._src import dispatch
from jax.interpreters import ad, batching, mlir

from jlstm.fused import kernel, loops

_F32 = np.dtype(np.float32)


def _primitive(name: str, impl, row_axes):
    """A multiple-result primitive computed by ``impl(*operands, **params)``, with the
    abstract evaluation, default lowering, JVP and batching rules described above.

    ``row_axes(params, n_operands) -> (in_axes, out_axes)`` names, per operand and
    result, the axis of the batch rows (None: shared across rows, the weights).
    """
    p = jex.core.Primitive(name)
    p.multiple_results = True
    p.def_impl(functools.partial(dispatch.apply_primitive, p))

    def abstract(*avals, **params):
        specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals]
        outs = jax.eval_shape(functools.partial(impl, **params), *specs)
        return [jax.core.ShapedArray(o.shape, o.dtype) for o in outs]

    p.def_abstract_eval(abstract)
    mlir.register_lowering(p, mlir.lower_fun(_with(impl), multiple_results=True))

    def jvp(primals, tangents, **params):
        tangents = [ad.instantiate_zeros(t) for t in tangents]
        out, dout = jax.jvp(functools.partial(impl, **params), tuple(primals), tuple(tangents))
        return list(out), list(dout)

    ad.primitive_jvps[p] = jvp

    def batch(args, dims, **params):
        in_axes, out_axes = row_axes(params, len(args))
        size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        if any(d is not None and r is None for d, r in zip(dims, in_axes, strict=True)):
            return _map_over_elements(p, args, dims, params, len(out_axes))
        folded = [_fold(a, d, r, size) for a, d, r in zip(args, dims, in_axes, strict=True)]
        outs = p.bind(*folded, **params)
        return [_unfold(o, r, size) for o, r in zip(outs, out_axes, strict=True)], [0] * len(outs)

    batching.primitive_batchers[p] = batch
    return p


def _with(impl):
    return lambda *args, **params: impl(*args, **params)


def _fold(a, d, row, size):
    """Merge the mapped axis ``d`` of ``a`` into its row axis (mapped index major)."""
    if row is None:
        return a
    if d is None:
        a = jnp.broadcast_to(jnp.expand_dims(a, row), (*a.shape[:row], size, *a.shape[row:]))
    else:
        a = jnp.moveaxis(a, d, row)
    return a.reshape(*a.shape[:row], size * a.shape[row + 1], *a.shape[row + 2 :])


def _unfold(a, row, size):
    """Inverse of :func:`_fold` on a result: its row axis split, the mapped axis first."""
    a = a.reshape(*a.shape[:row], size, a.shape[row] // size, *a.shape[row + 1 :])
    return jnp.moveaxis(a, row, 0)


def _map_over_elements(p, args, dims, params, n_out):
    mapped = [i for i, d in enumerate(dims) if d is not None]
    xs = [jnp.moveaxis(args[i], dims[i], 0) for i in mapped]

    def one(elements):
        full = list(args)
        for i, e in zip(mapped, elements, strict=True):
            full[i] = e
        return p.bind(*full, **params)

    return list(lax.map(one, xs)), [0] * n_out


def _kernel_lowering(p, impl, kernel_impl, applies):
    """On the CPU: the kernel where ``applies(avals, params)`` and it builds, unless the
    module is being exported; else the scan."""

    def rule(ctx, *args, **params):
        exporting = getattr(ctx.module_context.lowering_parameters, "for_export", False)
        use = params["kernel"] and not exporting and applies(ctx.avals_in, params)
        use = use and kernel.registered()
        fn = kernel_impl if use else impl
        return mlir.lower_fun(_with(fn), multiple_results=True)(ctx, *args, **params)

    mlir.register_lowering(p, rule, platform="cpu")


def _mask_operand(mask):
    """The kernels' mask operand: (T, B) bool, or (0, 0) for none."""
    return jnp.zeros((0, 0), bool) if mask is None else mask


def _all_f32(avals) -> bool:
    return all(a.dtype == _F32 for a in avals if a.dtype != np.dtype(bool))


# ------------------------------------------------------------------ forward


def _forward_impl(xs, w_x, w_h, b, h0, c0, *rest, has_mask, has_resets, kernel, **params):
    _, mask, resets = loops.split_rest(rest, has_mask, has_resets)
    return loops.forward(xs, w_x, w_h, b, h0, c0, mask, resets, **params)


def _forward_rows(params, n):
    xs_row = 0 if params["batch_major"] else 1
    rows_in = (xs_row, None, None, None, 0, 0, 1, 1)[:n]
    if params["save"]:
        gates = 1 if params["fused_gates"] else 4
        return rows_in, (0, 0, *([1] * gates), 1, 1)
    return rows_in, (xs_row, 0, 0)


def _forward_kernel(xs, w_x, w_h, b, h0, c0, *mask, reverse, save, batch_major, compute, **_):
    mask = mask[0] if mask else None  # (no resets: see _forward_applies)
    w, bs = loops.scaled_weights(w_x, w_h, b, c0.dtype, compute)
    if batch_major:
        batch, steps = xs.shape[:2]
    else:
        steps, batch = xs.shape[:2]
    hidden = h0.shape[-1]
    seq = jax.ShapeDtypeStruct((steps, batch, hidden), _F32)
    state = jax.ShapeDtypeStruct((batch, hidden), _F32)
    operands = (xs, w, bs, h0, c0, _mask_operand(mask))
    if not save:
        out = jax.ShapeDtypeStruct((batch, steps, hidden) if batch_major else seq.shape, _F32)
        call = jax.ffi.ffi_call("jlstm_lstm_forward", [out, state, state])
        return tuple(call(*operands, reverse=reverse, batch_major=batch_major))
    gates = jax.ShapeDtypeStruct((steps, batch, 4 * hidden), _F32)
    call = jax.ffi.ffi_call("jlstm_lstm_forward_saving", [state, state, gates, seq, seq])
    return tuple(call(*operands, reverse=reverse, batch_major=batch_major))


def _forward_applies(avals, params) -> bool:
    return (
        not params["has_resets"]
        and _all_f32(avals)
        and params["compute"] == _F32
        and (params["fused_gates"] or not params["save"])
    )


forward_p = _primitive("jlstm_lstm_forward", _forward_impl, _forward_rows)
_kernel_lowering(forward_p, _forward_impl, _forward_kernel, _forward_applies)


# ------------------------------------------------------------------ tangent and adjoint


def _recurrence_rows(params, n):
    rows = (1, 0, 0, None, 0, *([1] * (n - 5)))
    return rows, (1, 0, 0)


def _strip(params):
    return {k: v for k, v in params.items() if k != "kernel"}


def _tangent_impl(*args, **params):
    return loops.tangent(*args, **_strip(params))


def _adjoint_impl(*args, **params):
    return loops.adjoint(*args, **_strip(params))


def _adjoint_kernel(dys, dh, dc, w_h, c0, cs, *rest, reverse, has_mask, **_):
    (gates,), mask = (rest[:-1], rest[-1]) if has_mask else (rest, None)
    steps, batch, hidden = dys.shape
    shapes = [
        jax.ShapeDtypeStruct((steps, batch, 4 * hidden), _F32),
        jax.ShapeDtypeStruct((batch, hidden), _F32),
        jax.ShapeDtypeStruct((batch, hidden), _F32),
    ]
    call = jax.ffi.ffi_call("jlstm_lstm_backward", shapes, input_output_aliases={2: 0})
    operands = (w_h, dys, gates, cs, c0, dh, dc, _mask_operand(mask))
    return tuple(call(*operands, reverse=reverse))


def _adjoint_applies(avals, params) -> bool:
    gates = len(avals) - 6 - params["has_mask"] - params["has_resets"]
    return gates == 1 and not params["has_resets"] and _all_f32(avals) and params["compute"] == _F32


tangent_p = _primitive("jlstm_lstm_tangent", _tangent_impl, _recurrence_rows)
adjoint_p = _primitive("jlstm_lstm_adjoint", _adjoint_impl, _recurrence_rows)
_kernel_lowering(adjoint_p, _adjoint_impl, _adjoint_kernel, _adjoint_applies)


def _transpose_into(other):
    """The transpose rule of one linear loop: the other loop on the cotangents."""

    def rule(cts, *args, **params):
        linear, residuals = args[:3], args[3:]
        if any(ad.is_undefined_primal(r) for r in residuals):
            raise NotImplementedError("jlstm: the loop is linear only in its first three operands")
        cts = [ad.instantiate_zeros(ct) for ct in cts]
        outs = other.bind(*cts, *residuals, **params)
        grads = [
            o if ad.is_undefined_primal(x) else None for o, x in zip(outs, linear, strict=True)
        ]
        return [*grads, *([None] * len(residuals))]

    return rule


ad.primitive_transposes[tangent_p] = _transpose_into(adjoint_p)
ad.primitive_transposes[adjoint_p] = _transpose_into(tangent_p)
