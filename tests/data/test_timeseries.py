"""Sunspots, windows, chronological splits, the standardizer and the persistence baseline."""

import math
import sys

import numpy as np
import pytest

from jlstm.data import (
    Standardizer,
    chronological_split,
    load_sunspots,
    make_windows,
    persistence_baseline,
)


def test_make_windows_exact():
    xs, ys = make_windows(np.arange(6.0), window=3)
    assert xs.shape == (3, 3, 1) and ys.shape == (3, 1) and xs.dtype == ys.dtype == np.float32
    np.testing.assert_array_equal(xs[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(ys[:, 0], [3, 4, 5])
    xs, ys = make_windows(np.arange(6.0), window=2, horizon=3)
    np.testing.assert_array_equal(xs[:, :, 0], [[0, 1], [1, 2]])
    np.testing.assert_array_equal(ys[:, 0], [4, 5])


def test_make_windows_errors():
    with pytest.raises(ValueError, match="series must be longer than window \\+ horizon - 1 = 5"):
        make_windows(np.arange(5.0), window=4, horizon=2)
    with pytest.raises(ValueError, match="window must be >= 1; got 0"):
        make_windows(np.arange(5.0), window=0)
    with pytest.raises(ValueError, match="series must be a 1-D numeric array; .* shape \\(5, 1\\)"):
        make_windows(np.zeros((5, 1)), window=2)


def test_chronological_split():
    parts = chronological_split(np.arange(309.0))
    assert [len(p) for p in parts] == [216, 46, 47]
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(309.0))
    assert [len(p) for p in chronological_split(np.arange(10), (0.8, 0.2))] == [8, 2]
    with pytest.raises(
        ValueError, match="fractions must be positive and sum to 1; got \\(0.5, 0.4\\)"
    ):
        chronological_split(np.arange(10), (0.5, 0.4))
    with pytest.raises(ValueError, match="series is too short \\(3 values\\)"):
        chronological_split(np.arange(3))


def test_standardizer_uses_train_statistics_only():
    series = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    train, test = series[:4], series[4:]
    s = Standardizer.fit(train)
    assert s.mean == 2.5 and s.std == pytest.approx(math.sqrt(1.25))
    z = s.transform(train)
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    assert s.transform(test)[0] == pytest.approx((100 - 2.5) / math.sqrt(1.25))
    np.testing.assert_allclose(s.inverse_transform(s.transform(series)), series)
    with pytest.raises(ValueError, match="train must have at least two distinct finite values"):
        Standardizer.fit(np.ones(4))


def test_persistence_baseline_by_hand():
    xs, ys = make_windows(np.array([1.0, 2.0, 4.0, 7.0, 11.0]), window=2)
    # predictions 2, 4, 7 for targets 4, 7, 11: errors 2, 3, 4
    assert persistence_baseline(xs, ys) == pytest.approx(math.sqrt((4 + 9 + 16) / 3))
    with pytest.raises(
        ValueError, match="inputs must be \\(N, window, 1\\) and targets \\(N, 1\\)"
    ):
        persistence_baseline(xs, ys[:2])


def test_sunspots():
    pytest.importorskip("statsmodels")
    series = load_sunspots()
    assert series.shape == (309,) and series.dtype == np.float64
    assert series[:3].tolist() == [5.0, 11.0, 16.0] and series[-1] == 2.9
    assert series.min() >= 0.0
    train, val, test = chronological_split(series)
    xs, ys = make_windows(test, window=10)
    assert xs.shape == (37, 10, 1)
    expected = math.sqrt(np.mean((test[9:-1] - test[10:]) ** 2))
    assert persistence_baseline(xs, ys) == pytest.approx(expected, rel=1e-6)


def test_sunspots_missing_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.datasets", None)
    with pytest.raises(ImportError, match="pip install statsmodels"):
        load_sunspots()
