"""The adding problem and the copy task."""

import numpy as np
import pytest

from jlstm.data import (
    AddingTask,
    CopyTask,
    adding_test_set,
    copy_test_set,
    copy_vocab_size,
    make_adding_batch,
    make_copy_batch,
)


def test_adding_markers_and_targets():
    b = make_adding_batch(seed=0, step=0, batch_size=512, length=30)
    xs, y = b["xs"], b["y"]
    assert xs.shape == (512, 30, 2) and y.shape == (512, 1) and xs.dtype == np.float32
    assert b["lengths"].tolist() == [30] * 512
    markers = xs[:, :, 1]
    assert set(np.unique(markers).tolist()) == {0.0, 1.0}
    assert (markers[:, :15].sum(1) == 1).all() and (markers[:, 15:].sum(1) == 1).all()
    values = xs[:, :, 0]
    assert values.min() >= 0.0 and values.max() < 1.0
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(1), rtol=1e-6)


def test_adding_constant_prediction_mse_is_one_sixth():
    y = make_adding_batch(seed=1, step=0, batch_size=10_000, length=50)["y"]
    mse = float(np.mean((y - 1.0) ** 2))
    assert abs(mse - 1 / 6) < 0.01


def test_adding_is_a_pure_function_of_seed_and_step():
    a = make_adding_batch(3, 7, 8, 20)
    np.testing.assert_array_equal(a["xs"], make_adding_batch(3, 7, 8, 20)["xs"])
    assert not np.array_equal(a["xs"], make_adding_batch(3, 8, 8, 20)["xs"])
    assert not np.array_equal(a["xs"], make_adding_batch(4, 7, 8, 20)["xs"])


def test_test_sets_are_fixed_and_not_training_batches():
    test = adding_test_set(seed=0, n=16, length=20)
    np.testing.assert_array_equal(test["xs"], adding_test_set(0, 16, 20)["xs"])
    train_values = np.concatenate([make_adding_batch(0, s, 16, 20)["xs"] for s in range(50)])
    assert not np.isin(test["xs"][:, :, 0], train_values[:, :, 0]).any()
    copy = copy_test_set(0, 64, gap=5)
    assert not any(
        np.array_equal(copy["xs"], make_copy_batch(0, s, 64, gap=5)["xs"]) for s in range(20)
    )


def test_copy_layout():
    s, gap, alphabet = 4, 3, 5
    b = make_copy_batch(seed=0, step=2, batch_size=32, gap=gap, num_symbols=s, alphabet=alphabet)
    xs, y, w = b["xs"], b["y"], b["weights"]
    t = 2 * s + gap + 1
    assert xs.shape == y.shape == w.shape == (32, t) and b["lengths"].tolist() == [t] * 32
    assert xs.dtype == y.dtype == np.int32 and w.dtype == np.float32
    symbols = xs[:, :s]
    assert symbols.min() >= 1 and symbols.max() <= alphabet
    assert (xs[:, s : s + gap] == 0).all() and (xs[:, s + gap] == alphabet + 1).all()
    assert (xs[:, s + gap + 1 :] == 0).all()
    np.testing.assert_array_equal(y[:, t - s :], symbols)
    assert (y[:, : t - s] == 0).all()
    np.testing.assert_array_equal(w, np.broadcast_to(np.arange(t) >= t - s, (32, t)))
    assert copy_vocab_size(alphabet) == 7


def test_copy_with_no_gap():
    xs = make_copy_batch(0, 0, 1, gap=0, num_symbols=2, alphabet=3)["xs"]
    assert xs.shape == (1, 5) and xs[0, 2] == 4 and (xs[0, 3:] == 0).all()


def test_task_objects():
    task = AddingTask(length=10, seed=2)
    np.testing.assert_array_equal(task.train_batch(5, 4)["y"], make_adding_batch(2, 5, 4, 10)["y"])
    assert task.test_set(3)["xs"].shape == (3, 10, task.input_size)
    copy = CopyTask(gap=2, num_symbols=3, alphabet=4, seed=1)
    assert copy.vocab_size == 6
    expected = make_copy_batch(1, 0, 2, gap=2, num_symbols=3, alphabet=4)["xs"]
    np.testing.assert_array_equal(copy.train_batch(0, 2)["xs"], expected)
    assert copy.test_set(5)["y"].shape == (5, 9)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: make_adding_batch(0, 0, 4, 1), "length must be >= 2; got 1"),
        (lambda: make_adding_batch(0, 0, 0, 10), "batch_size must be >= 1; got 0"),
        (lambda: make_adding_batch(-1, 0, 4, 10), "seed must be >= 0; got -1"),
        (lambda: make_adding_batch(0, -3, 4, 10), "step must be >= 0; got -3"),
        (lambda: make_copy_batch(0, 0, 4, gap=-1), "gap must be >= 0; got -1"),
        (lambda: make_copy_batch(0, 0, 4, gap=1, num_symbols=0), "num_symbols must be >= 1"),
        (lambda: copy_test_set(0, 4, gap=1, alphabet=0), "alphabet must be >= 1; got 0"),
        (lambda: copy_test_set(0, 0, gap=1), "n must be >= 1; got 0"),
        (lambda: adding_test_set(0, 2.0, 10), "n must be an integer; got float 2.0"),
    ],
)
def test_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
