"""The ``case`` fixture: every model assembly of :mod:`nn_cases` in turn."""

import pytest
from nn_cases import CASES, Case


@pytest.fixture(params=list(CASES))
def case(request) -> Case:
    return CASES[request.param]
