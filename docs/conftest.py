"""pytest runs the pages' examples (``--doctest-glob=docs/*.md`` in pyproject.toml).

The examples are user code, so they run under JAX's default numerics, also when
tests/conftest.py (imported in the same process) has made promotion strict for the
library's own tests: optax's Adam, for one, mixes an int32 step count with floats.

The Python files here are the site's tools, not tests: the chart script needs the
benchmark results and the griffe extension needs the docs extra.
"""

import jax
import pytest

collect_ignore_glob = ["*.py"]


@pytest.fixture(autouse=True)
def default_numerics():
    with (
        jax.numpy_dtype_promotion("standard"),
        jax.numpy_rank_promotion("allow"),
    ):
        yield
