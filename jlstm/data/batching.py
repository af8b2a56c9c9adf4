"""Padding, an in-memory sequence dataset and a resumable batch schedule.

Everything here is NumPy. The training schedule :func:`batch_indices` is a pure
function of ``(seed, step)``: there is no iterator state, so a run restored at
step ``s`` draws exactly the batches an uninterrupted run would have drawn.

>>> ds = SequenceDataset(inputs=[np.ones((3, 2)), np.ones((5, 2))], targets=[1, 0], num_classes=2)
>>> b = ds.batch([0, 1])
>>> b["xs"].shape, b["lengths"].tolist(), b["y"].tolist()
((2, 5, 2), [3, 5], [1, 0])
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence

import numpy as np

from jlstm.data._validate import check_int


def pad_sequences(
    seqs: Sequence[np.ndarray],
    *,
    max_len: int | None = None,
    pad_to_multiple: int | None = None,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads sequences with zeros to a common length.

    The padded length is the longest sequence, or ``max_len`` when given (an error
    if a sequence is longer), or the longest rounded up to a multiple of
    ``pad_to_multiple`` (fewer distinct shapes, so fewer recompilations under jit).

    Shapes:
      seqs: B arrays (T_i, *feature) with the same trailing shape, e.g. (T_i, F),
        or (T_i,) for token ids
      -> xs: (B, T, *feature) in ``dtype``; lengths: (B,) int32
    """
    if isinstance(seqs, np.ndarray) or len(seqs) == 0:
        what = f"an array of shape {seqs.shape}" if isinstance(seqs, np.ndarray) else "[]"
        raise ValueError(f"seqs must be a non-empty list of arrays (T_i, ...); got {what}")
    if max_len is not None and pad_to_multiple is not None:
        raise ValueError(
            f"give at most one of max_len and pad_to_multiple; got max_len={max_len}, "
            f"pad_to_multiple={pad_to_multiple}"
        )
    arrays = [np.asarray(s) for s in seqs]
    feature = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[1:] != feature:
            raise ValueError(
                f"seqs[{i}] must have shape (T, *{feature}) like seqs[0]; got shape {a.shape}"
            )
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int32)
    longest = int(lengths.max())
    if max_len is not None:
        target = check_int("max_len", max_len, minimum=0)
        if longest > target:
            raise ValueError(
                f"max_len must be >= the longest sequence ({longest}, seqs[{lengths.argmax()}]); "
                f"got max_len={target}"
            )
    elif pad_to_multiple is not None:
        m = check_int("pad_to_multiple", pad_to_multiple, minimum=1)
        target = -(-longest // m) * m
    else:
        target = longest
    xs = np.zeros((len(arrays), target, *feature), dtype=dtype)
    for i, a in enumerate(arrays):
        xs[i, : a.shape[0]] = a
    return xs, lengths


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Variable-length sequences with one target each, or one target per step.

    Attributes:
      inputs: N arrays (T_i, F) of features, or (T_i,) of integer token ids.
      targets: class ids (N,) int32 when ``num_classes`` is set; regression targets
        (N,) or (N, D) float32 otherwise; or per-step targets, a list of N arrays
        (T_i, ...) aligned with ``inputs``.
      num_classes: number of classes K (targets in ``0..K-1``), None for regression
        and per-step targets.
      class_names: the original label of each class id, where known.
      name: a label for logs, e.g. ``"JapaneseVowels/train"``.
    """

    inputs: Sequence[np.ndarray]
    targets: np.ndarray | Sequence[np.ndarray]
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    name: str = ""

    def __post_init__(self):
        inputs = tuple(np.asarray(x) for x in self.inputs)
        if not inputs:
            raise ValueError("inputs must hold at least one sequence; got 0")
        first = inputs[0]
        for i, x in enumerate(inputs):
            if x.ndim not in (1, 2) or x.shape[1:] != first.shape[1:]:
                raise ValueError(
                    f"inputs[{i}] must have shape (T, *{first.shape[1:]}) like inputs[0] "
                    f"(1-D token ids or 2-D (T, F) features); got shape {x.shape}"
                )
        per_step = isinstance(self.targets, list | tuple) and isinstance(
            self.targets[0] if self.targets else None, np.ndarray
        )
        if per_step:
            targets = tuple(np.asarray(t) for t in self.targets)
        else:
            targets = np.asarray(self.targets)
        if len(targets) != len(inputs):
            raise ValueError(
                f"targets must have one entry per input ({len(inputs)}); got {len(targets)}"
            )
        if per_step:
            for i, (x, t) in enumerate(zip(inputs, targets, strict=True)):
                if t.ndim == 0 or t.shape[0] != x.shape[0]:
                    raise ValueError(
                        f"targets[{i}] must have {x.shape[0]} steps like inputs[{i}]; "
                        f"got shape {t.shape}"
                    )
            if self.num_classes is not None:
                raise ValueError(
                    f"num_classes must be None for per-step targets; got {self.num_classes}"
                )
        elif self.num_classes is not None:
            k = check_int("num_classes", self.num_classes, minimum=1)
            if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
                raise ValueError(
                    f"targets must be integer class ids (N,) when num_classes is set; "
                    f"got dtype {targets.dtype}, shape {targets.shape}"
                )
            if targets.min() < 0 or targets.max() >= k:
                raise ValueError(
                    f"targets must lie in 0..{k - 1} (num_classes={k}); "
                    f"got values in {targets.min()}..{targets.max()}"
                )
            targets = targets.astype(np.int32)
        else:
            targets = targets.astype(np.float32)
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names must have num_classes={self.num_classes} entries; "
                f"got {len(self.class_names)}"
            )
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "targets", targets)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def feature_size(self) -> int | None:
        """F for (T_i, F) inputs; None for token-id inputs (T_i,)."""
        x = self.inputs[0]
        return x.shape[1] if x.ndim == 2 else None

    @property
    def lengths(self) -> np.ndarray:
        """Sequence lengths, shape (N,) int32."""
        return np.array([x.shape[0] for x in self.inputs], dtype=np.int32)

    @property
    def max_length(self) -> int:
        """The longest sequence; pass it as ``max_len`` for one fixed batch shape."""
        return int(self.lengths.max())

    def batch(
        self,
        indices,
        *,
        max_len: int | None = None,
        pad_to_multiple: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Gathers and pads the examples at ``indices``.

        Padding goes to the batch's longest sequence unless ``max_len`` or
        ``pad_to_multiple`` is given (see :func:`pad_sequences`).

        Shapes:
          indices: (B,) ints in ``0..N-1``
          -> xs: (B, T, F) float32 (or (B, T) int32 for token ids);
             lengths: (B,) int32;
             y: (B,) int32 class ids, (B, ...) float32 regression targets,
             or (B, T, ...) zero-padded per-step targets
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                f"indices must be a non-empty 1-D integer array; got dtype {idx.dtype}, "
                f"shape {idx.shape}"
            )
        if idx.min() < 0 or idx.max() >= len(self):
            raise ValueError(
                f"indices must lie in 0..{len(self) - 1}; got values in {idx.min()}..{idx.max()}"
            )
        pad = dict(max_len=max_len, pad_to_multiple=pad_to_multiple)
        seqs = [self.inputs[i] for i in idx]
        dtype = np.int32 if np.issubdtype(seqs[0].dtype, np.integer) else np.float32
        xs, lengths = pad_sequences(seqs, dtype=dtype, **pad)
        if isinstance(self.targets, tuple):
            t = [self.targets[i] for i in idx]
            t_dtype = np.int32 if np.issubdtype(t[0].dtype, np.integer) else np.float32
            y, _ = pad_sequences(t, dtype=t_dtype, max_len=xs.shape[1])
        else:
            y = self.targets[idx]
        return {"xs": xs, "lengths": lengths, "y": y}


def steps_per_epoch(num_examples: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Batches in one pass over the data: ``N // B``, or ``ceil(N / B)`` keeping the rest."""
    n = check_int("num_examples", num_examples, minimum=1)
    b = check_int("batch_size", batch_size, minimum=1)
    if drop_remainder and b > n:
        raise ValueError(
            f"batch_size must be <= num_examples ({n}) when drop_remainder=True; got {b}"
        )
    return n // b if drop_remainder else -(-n // b)


@functools.lru_cache(maxsize=8)
def _epoch_order(num_examples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        order = np.arange(num_examples)
    else:
        order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    order.flags.writeable = False
    return order


def standardize_features(
    train: SequenceDataset, *others: SequenceDataset
) -> tuple[SequenceDataset, ...]:
    """Z-score every feature with the mean and (population) standard deviation of
    ``train``'s values (all its time steps, NaN left out); the same transform goes to
    ``others`` (the test split, say), so no statistic comes from them. A constant
    feature is only centred.

    Shapes:
      each dataset's inputs (T_i, F) -> (T_i, F) float32

    >>> xs = [np.array([[1.0], [3.0]]), np.array([[5.0]])]
    >>> train = SequenceDataset(xs, [0, 1], num_classes=2)
    >>> [x.ravel().tolist() for x in standardize_features(train)[0].inputs]
    [[-1.224744..., 0.0], [1.224744...]]
    """
    if train.feature_size is None:
        raise ValueError(f"train must hold (T, F) feature sequences; got token ids ({train.name})")
    values = np.concatenate(train.inputs).astype(np.float64)  # (sum T_i, F)
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    std = np.where(std > 0, std, 1.0)
    for ds in others:
        if ds.feature_size != train.feature_size:
            raise ValueError(
                f"{ds.name or 'a dataset'} must have {train.feature_size} features like train; "
                f"got {ds.feature_size}"
            )
    scale = lambda ds: dataclasses.replace(
        ds, inputs=[((x - mean) / std).astype(np.float32) for x in ds.inputs]
    )
    return tuple(scale(ds) for ds in (train, *others))


def batch_indices(
    num_examples: int,
    batch_size: int,
    step: int,
    *,
    seed: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
) -> np.ndarray:
    """The example indices of training batch number ``step``, a pure function of it.

    ``epoch = step // steps_per_epoch``; each epoch visits the examples in the order
    ``np.random.default_rng([seed, epoch]).permutation(num_examples)`` (or in order
    when ``shuffle=False``), cut into consecutive batches. With ``drop_remainder``
    the last ``num_examples % batch_size`` examples of each permutation are skipped
    (a different few each epoch) so that every batch has the same shape; without
    it the last batch of an epoch is smaller.

    Shapes:
      -> indices: (batch_size,) int64 (fewer for the last batch when not dropping)

    >>> batch_indices(10, 4, 0, seed=0, shuffle=False).tolist()
    [0, 1, 2, 3]
    """
    n = check_int("num_examples", num_examples, minimum=1)
    b = check_int("batch_size", batch_size, minimum=1)
    step = check_int("step", step, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    per_epoch = steps_per_epoch(n, b, drop_remainder=drop_remainder)
    epoch, k = divmod(step, per_epoch)
    return _epoch_order(n, seed, epoch, bool(shuffle))[k * b : (k + 1) * b].copy()


def eval_batches(
    dataset: SequenceDataset, batch_size: int, **batch_kwargs
) -> Iterator[dict[str, np.ndarray]]:
    """Yields every example once, in order, ``batch_size`` at a time (the last smaller).

    ``batch_kwargs`` (``max_len``, ``pad_to_multiple``) go to
    :meth:`SequenceDataset.batch`.
    """
    b = check_int("batch_size", batch_size, minimum=1)
    for start in range(0, len(dataset), b):
        yield dataset.batch(np.arange(start, min(start + b, len(dataset))), **batch_kwargs)
