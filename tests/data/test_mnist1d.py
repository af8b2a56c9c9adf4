"""MNIST-1D built locally by the mnist1d package."""

import random
import sys

import numpy as np
import pytest

from jlstm.data import load_mnist1d


def test_mnist1d():
    pytest.importorskip("mnist1d")
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    train, test = load_mnist1d()
    assert (len(train), len(test)) == (4000, 1000)
    assert set(train.lengths.tolist()) == set(test.lengths.tolist()) == {40}
    assert train.feature_size == 1 and train.num_classes == 10
    assert set(train.targets.tolist()) == set(range(10))
    # pinned from mnist1d 0.0.2.post1 with seed 42 (its legacy np.random stream)
    assert train.targets[:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]
    assert test.targets[:10].tolist() == [2, 6, 3, 9, 4, 3, 1, 9, 5, 2]
    x = np.concatenate([np.stack(train.inputs), np.stack(test.inputs)]).astype(np.float64)
    assert abs(x.mean()) < 1e-6 and abs(x.std() - 1.0) < 1e-6  # standardised over all 5000
    # mnist1d seeds the global generators; load_mnist1d puts them back
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002
    assert random.getstate() == py_state


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match="pip install mnist1d"):
        load_mnist1d()
