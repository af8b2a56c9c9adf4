"""Strict numerics for every test, a PRNG key fixture and a pytree comparison."""

import os

# The tests' programs are small and many: compiling them is most of the suite's time, and
# LLVM's optimisation passes most of each compile. Without them the suite takes about half
# the time; the numbers are the same to float tolerance, and no test here measures speed
# (benchmarks/ does, at XLA's defaults). A subprocess that sets XLA_FLAGS keeps its own.
os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"])
)

import jax  # noqa: E402  (after XLA_FLAGS, which the CPU backend reads when it starts)
import numpy as np
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
# float32 products in float32: on a GPU JAX's default is TF32 (about 1e-3 relative),
# which no float32 tolerance here is meant for. On the CPU this changes nothing.
jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def key():
    return jax.random.key(0)


def trees_allclose(actual, desired, *, rtol=1e-6, atol=1e-6):
    """Assert two pytrees have the same structure and allclose leaves."""
    actual_leaves, actual_def = jax.tree.flatten(actual)
    desired_leaves, desired_def = jax.tree.flatten(desired)
    assert actual_def == desired_def, f"tree structures differ: {actual_def} vs {desired_def}"
    for i, (a, d) in enumerate(zip(actual_leaves, desired_leaves, strict=True)):
        np.testing.assert_allclose(
            np.asarray(a, np.float64),
            np.asarray(d, np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=f"leaf {i}",
        )


@pytest.fixture
def assert_trees_allclose():
    """The pytree comparison, as a fixture so that tests in any folder can use it."""
    return trees_allclose
