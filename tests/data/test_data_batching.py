"""Padding, SequenceDataset batches and the resumable batch schedule."""

import numpy as np
import pytest

from jlstm.data import (
    SequenceDataset,
    batch_indices,
    batching,
    eval_batches,
    pad_sequences,
    standardize_features,
    steps_per_epoch,
)

A = np.array([[1.0, 2.0], [3.0, 4.0]])
B = np.array([[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]])


def test_pad_sequences_exact():
    xs, lengths = pad_sequences([A, B])
    expected = [[[1, 2], [3, 4], [0, 0]], [[5, 6], [7, 8], [9, 10]]]
    np.testing.assert_array_equal(xs, expected)
    assert xs.dtype == np.float32 and lengths.dtype == np.int32
    assert lengths.tolist() == [2, 3]


def test_pad_sequences_token_ids_max_len_and_multiple():
    xs, lengths = pad_sequences([np.array([3, 1]), np.array([2])], max_len=4, dtype=np.int32)
    np.testing.assert_array_equal(xs, [[3, 1, 0, 0], [2, 0, 0, 0]])
    assert xs.dtype == np.int32 and lengths.tolist() == [2, 1]
    xs, _ = pad_sequences([A, B], pad_to_multiple=4)
    assert xs.shape == (2, 4, 2) and not xs[:, 3].any()
    xs, _ = pad_sequences([A, B], pad_to_multiple=3)
    assert xs.shape == (2, 3, 2)


@pytest.mark.parametrize(
    "seqs, kwargs, match",
    [
        ([], {}, "seqs must be a non-empty list of arrays .* got \\[\\]"),
        (np.zeros((2, 3)), {}, "got an array of shape \\(2, 3\\)"),
        ([A, B], {"max_len": 2}, "max_len must be >= the longest sequence \\(3, seqs\\[1\\]\\)"),
        ([A, np.zeros((2, 3))], {}, "seqs\\[1\\] must have shape \\(T, \\*\\(2,\\)\\)"),
        ([np.float32(1.0)], {}, "seqs\\[0\\] must have shape .* got shape \\(\\)"),
        ([A], {"max_len": 4, "pad_to_multiple": 2}, "at most one of max_len and pad_to_multiple"),
        ([A], {"pad_to_multiple": 0}, "pad_to_multiple must be >= 1; got 0"),
        ([A], {"max_len": 2.5}, "max_len must be an integer; got float 2.5"),
    ],
)
def test_pad_sequences_errors(seqs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences(seqs, **kwargs)


def test_dataset_class_targets_batch():
    ds = SequenceDataset([A, B, A[:1]], [2, 0, 1], num_classes=3, name="toy")
    assert len(ds) == 3 and ds.feature_size == 2 and ds.max_length == 3
    b = ds.batch([2, 0])
    np.testing.assert_array_equal(b["xs"], [[[1, 2], [0, 0]], [[1, 2], [3, 4]]])
    assert b["lengths"].tolist() == [1, 2]
    assert b["y"].tolist() == [1, 2] and b["y"].dtype == np.int32
    assert ds.batch([0], max_len=ds.max_length)["xs"].shape == (1, 3, 2)


def test_dataset_regression_and_per_step_targets():
    reg = SequenceDataset([A, B], np.array([0.5, -1.0]))
    assert reg.num_classes is None and reg.batch([1])["y"].tolist() == [-1.0]
    assert reg.targets.dtype == np.float32
    tokens = [np.array([4, 5, 6]), np.array([7])]
    steps = SequenceDataset(tokens, [np.array([5, 6, 0]), np.array([8])])
    assert steps.feature_size is None
    b = steps.batch([1, 0], pad_to_multiple=4)
    np.testing.assert_array_equal(b["xs"], [[7, 0, 0, 0], [4, 5, 6, 0]])
    np.testing.assert_array_equal(b["y"], [[8, 0, 0, 0], [5, 6, 0, 0]])
    assert b["xs"].dtype == np.int32 and b["y"].dtype == np.int32


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([], []), {}, "inputs must hold at least one sequence; got 0"),
        (([A, B], [0]), {}, "targets must have one entry per input \\(2\\); got 1"),
        (([A, np.zeros((3, 4))], [0, 1]), {}, "inputs\\[1\\] must have shape \\(T, \\*\\(2,\\)\\)"),
        (([np.zeros((2, 2, 2))], [0]), {}, "inputs\\[0\\] must have shape"),
        (([A, B], [0, 3]), {"num_classes": 3}, "targets must lie in 0..2 .* got values in 0..3"),
        (([A, B], [0.0, 1.0]), {"num_classes": 2}, "targets must be integer class ids"),
        (([A], [np.zeros(3)]), {}, "targets\\[0\\] must have 2 steps like inputs\\[0\\]"),
        (([A], [np.zeros(2)]), {"num_classes": 2}, "num_classes must be None for per-step"),
        (([A], [0]), {"num_classes": 1, "class_names": ("a", "b")}, "class_names must have"),
    ],
)
def test_dataset_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceDataset(*args, **kwargs)


def test_batch_errors():
    ds = SequenceDataset([A, B], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="indices must lie in 0..1; got values in 0..2"):
        ds.batch([0, 2])
    with pytest.raises(ValueError, match="indices must be a non-empty 1-D integer array"):
        ds.batch([0.0])


@pytest.mark.parametrize("n, b, drop", [(10, 3, True), (10, 3, False), (12, 4, True)])
def test_each_example_once_per_epoch(n, b, drop):
    per_epoch = steps_per_epoch(n, b, drop_remainder=drop)
    assert per_epoch == (n // b if drop else -(-n // b))
    for epoch in range(3):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        seen = np.concatenate([batch_indices(n, b, s, seed=7, drop_remainder=drop) for s in steps])
        assert len(seen) == len(set(seen.tolist())) == (per_epoch * b if drop else n)
    sizes = [len(batch_indices(n, b, s, seed=7, drop_remainder=drop)) for s in range(per_epoch)]
    assert sizes[-1] == (b if drop else n - (per_epoch - 1) * b)


def test_schedule_is_the_documented_pure_function():
    n, b = 10, 3
    for step in range(9):
        epoch, k = divmod(step, 3)
        order = np.random.default_rng([5, epoch]).permutation(n)
        np.testing.assert_array_equal(batch_indices(n, b, step, seed=5), order[k * b : k * b + b])
    assert batch_indices(n, b, 4, seed=5, shuffle=False).tolist() == [3, 4, 5]
    assert not np.array_equal(batch_indices(n, b, 0, seed=5), batch_indices(n, b, 3, seed=5))
    assert not np.array_equal(batch_indices(n, b, 0, seed=5), batch_indices(n, b, 0, seed=6))


def test_resume_gives_the_uninterrupted_batches():
    uninterrupted = [batch_indices(50, 8, s, seed=3) for s in range(40)]
    batching._epoch_order.cache_clear()  # a fresh process after a restart from step 17
    resumed = [batch_indices(50, 8, s, seed=3) for s in range(17, 40)]
    for a, b in zip(uninterrupted[17:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_returned_indices_are_a_copy():
    idx = batch_indices(10, 5, 0, seed=0)
    idx[:] = 0
    assert len(set(batch_indices(10, 5, 0, seed=0).tolist())) == 5


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((3, 4, 0), {"seed": 0}, "batch_size must be <= num_examples \\(3\\) when drop_remainder"),
        ((10, 4, -1), {"seed": 0}, "step must be >= 0; got -1"),
        ((10, 4, 1.0), {"seed": 0}, "step must be an integer; got float 1.0"),
        ((10, 4, 0), {"seed": -2}, "seed must be >= 0; got -2"),
        ((0, 4, 0), {"seed": 0}, "num_examples must be >= 1; got 0"),
        ((10, 0, 0), {"seed": 0}, "batch_size must be >= 1; got 0"),
    ],
)
def test_batch_indices_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch_indices(*args, **kwargs)


def test_eval_batches_cover_everything_in_order():
    inputs = [np.full((t, 1), t, np.float32) for t in (1, 3, 2, 5, 4)]
    ds = SequenceDataset(inputs, np.arange(5), num_classes=5)
    batches = list(eval_batches(ds, 2))
    assert [len(b["y"]) for b in batches] == [2, 2, 1]
    assert np.concatenate([b["y"] for b in batches]).tolist() == [0, 1, 2, 3, 4]
    assert [b["xs"].shape[1] for b in batches] == [3, 5, 4]
    assert np.concatenate([b["lengths"] for b in batches]).tolist() == [1, 3, 2, 5, 4]
    assert {b["xs"].shape[1] for b in eval_batches(ds, 2, max_len=5)} == {5}
    with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
        next(eval_batches(ds, 0))


def test_standardize_features_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    train_xs = [rng.normal([2.0, -1.0, 5.0], [3.0, 0.5, 0.0], (n, 3)) for n in (4, 7, 2)]
    test_xs = [rng.normal(0.0, 1.0, (n, 3)) for n in (5, 3)]
    train = SequenceDataset(train_xs, [0, 1, 0], num_classes=2, class_names=("a", "b"), name="tr")
    test = SequenceDataset(test_xs, [1, 1], num_classes=2, name="te")
    new_train, new_test = standardize_features(train, test)
    values = np.concatenate(train_xs)  # the reference: statistics by hand, over all steps
    mean, std = values.mean(0), values.std(0)
    std[2] = 1.0  # the constant feature is only centred
    for new, old in ((new_train, train_xs), (new_test, test_xs)):
        for x, ref in zip(new.inputs, old, strict=True):
            assert x.dtype == np.float32
            np.testing.assert_allclose(x, (ref - mean) / std, rtol=1e-5, atol=1e-6)
    all_train = np.concatenate(new_train.inputs)
    np.testing.assert_allclose(all_train[:, :2].mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(all_train[:, :2].std(0), 1.0, rtol=1e-5)
    assert new_train.targets.tolist() == [0, 1, 0] and new_train.class_names == ("a", "b")
    assert new_test.name == "te" and new_test.lengths.tolist() == [5, 3]


def test_standardize_features_ignores_missing_values_and_checks_shapes():
    train = SequenceDataset([np.array([[1.0], [np.nan], [3.0]])], [0], num_classes=1)
    (scaled,) = standardize_features(train)
    np.testing.assert_allclose(scaled.inputs[0][[0, 2], 0], [-1.0, 1.0], rtol=1e-6)
    assert np.isnan(scaled.inputs[0][1, 0])
    other = SequenceDataset([np.ones((2, 2))], [0], num_classes=1, name="wide")
    with pytest.raises(ValueError, match="wide must have 1 features like train; got 2"):
        standardize_features(train, other)
    tokens = SequenceDataset([np.array([1, 2])], [0], num_classes=1)
    with pytest.raises(ValueError, match=r"train must hold \(T, F\) feature sequences"):
        standardize_features(tokens)
