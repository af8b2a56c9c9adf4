"""The transformation grid: every JAX transformation of the layer, on every implementation,
with and without lengths, reverse and bidirectional, equal to the reference.

The reference is ``implementation="reference"``: ``lax.scan`` over the cell,
differentiated by JAX. Each case computes the same transformed function with
the implementation under test and with the reference and compares the numbers.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import init_params, layer, stack

B, T, INPUT, H = 3, 6, 4, 3
LENGTHS = jnp.array([6, 2, 0])
IMPLEMENTATIONS = ("xla", "cpu_kernel")  # "auto" is one of these (test_implementations.py)
OPTIONS = {
    "plain": dict(),
    "lengths": dict(lengths=LENGTHS),
    "reverse": dict(lengths=LENGTHS, reverse=True),
    "bidirectional": dict(lengths=LENGTHS, bidirectional=True),
}


def setup():
    params = init_params(jax.random.key(0), INPUT, H)
    params = params._replace(b=params.b + 0.3 * jax.random.normal(jax.random.key(7), (4 * H,)))
    xs = jax.random.normal(jax.random.key(1), (B, T, INPUT))
    return params, xs


def model(implementation, options):
    """``f(params, xs, **overrides) -> (hs, final_c)`` for one implementation and set of
    options; ``f.lengths`` are its lengths (None without)."""
    f = _model(implementation, dict(options))
    f.lengths = options.get("lengths")
    return f


def per_row(f, p, xi, li):
    """``f`` on one row of the batch (its own length, if any)."""
    return f(p, xi[None], **({} if li is None else {"lengths": li[None]}))


def _model(implementation, options):
    if options.pop("bidirectional", False):
        backward = init_params(jax.random.key(2), INPUT, H)

        def f(p, x, **kw):
            ys, final = stack(
                ((p, backward),), x, implementation=implementation, **{**options, **kw}
            )
            return ys, final.c

        return f

    def f(p, x, **kw):
        hs, final = layer(p, x, implementation=implementation, **{**options, **kw})
        return hs, final.c

    return f


def scalar(f):
    """A loss that reads every output, nonlinearly."""
    return lambda p, x: (jnp.sin(f(p, x)[0]) ** 2).sum() + (f(p, x)[1] ** 2).sum()


def of_bias(f, params, xs):
    return lambda b: scalar(f)(params._replace(b=b), xs)


s = jnp.arange(1.0, 4.0)  # a vmapped scale


TRANSFORMS = {
    "jit": lambda f, p, x: jax.jit(f)(p, x),
    "grad": lambda f, p, x: jax.grad(scalar(f), argnums=(0, 1))(p, x),
    "vmap_batch": lambda f, p, x: jax.vmap(lambda xi, li: per_row(f, p, xi, li))(x, f.lengths),
    "vmap_params": lambda f, p, x: jax.vmap(lambda w: f(p._replace(w_h=w), x))(
        jnp.stack([p.w_h, 0.5 * p.w_h])
    ),
    "vmap_grad": lambda f, p, x: jax.vmap(
        jax.grad(
            lambda b, xi, li: scalar(lambda p, x: per_row(f, p, x[0], li))(
                p._replace(b=b), xi[None]
            )
        ),
        in_axes=(None, 0, 0),
    )(p.b, x, f.lengths),
    "grad_grad": lambda f, p, x: jax.grad(lambda b: jnp.sum(jax.grad(of_bias(f, p, x))(b) ** 2))(
        p.b
    ),
    "jvp": lambda f, p, x: jax.jvp(
        lambda b, xx: f(p._replace(b=b), xx), (p.b, x), (jnp.cos(p.b), jnp.sin(x))
    ),
    "jacfwd": lambda f, p, x: jax.jacfwd(lambda b: f(p._replace(b=b), x))(p.b),
    "jacrev": lambda f, p, x: jax.jacrev(lambda b: f(p._replace(b=b), x))(p.b),
    "linearize": lambda f, p, x: jax.linearize(lambda w: f(p._replace(w_h=w), x), p.w_h)[1](
        jnp.cos(p.w_h)
    ),
    "hessian": lambda f, p, x: jax.hessian(of_bias(f, p, x))(p.b),
    "jvp_vmap_grad": lambda f, p, x: jax.jvp(
        lambda b: jax.vmap(lambda si: jax.grad(lambda b: si * of_bias(f, p, x)(b))(b))(s),
        (p.b,),
        (p.b,),
    ),
    "vmap_jvp_grad": lambda f, p, x: jax.vmap(
        lambda si: jax.jvp(jax.grad(of_bias(f, p, x)), (p.b,), (si * p.b,))
    )(s),
    "checkpoint": lambda f, p, x: jax.grad(jax.checkpoint(scalar(f)), argnums=(0, 1))(p, x),
    "in_user_scan": lambda f, p, x: jax.grad(
        lambda p: jax.lax.scan(
            lambda c, xi: (c + scalar(f)(p, xi), None), 0.0, jnp.stack([x, 2 * x])
        )[0]
    )(p),
}


def run(transform, implementation, options):
    """The transformed function, compiled as one program (run eagerly, each of its many
    small operations would compile on its own: ten times the time, the same numbers).
    The plain options also run eagerly, so both ways of calling stay covered."""
    params, xs = setup()
    f = model(implementation, OPTIONS[options])
    program = lambda p, x: TRANSFORMS[transform](f, p, x)
    if options == "plain":
        return program(params, xs)
    return jax.jit(program)(params, xs)


@functools.cache
def reference(transform, options):
    """The reference's result, once per process for both implementations."""
    return run(transform, "reference", options)


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_transformation_equals_reference(transform, implementation, options):
    actual = run(transform, implementation, options)
    desired = reference(transform, options)
    leaves_a, leaves_d = jax.tree.leaves(actual), jax.tree.leaves(desired)
    assert len(leaves_a) == len(leaves_d) and leaves_a
    for a, d in zip(leaves_a, leaves_d, strict=True):
        assert a.shape == d.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=2e-5, atol=2e-5)
        assert float(jnp.abs(d).max()) > 0 or transform == "jit"  # not vacuous
