"""Long-range memory tasks generated with NumPy: the adding problem and the copy task.

Every batch is a pure function of ``(seed, step)``, and every fixed test set of
``seed`` alone. The generator for each is seeded with
``SeedSequence(seed, spawn_key=(task, split, step))``, so the training stream,
the test set and the two tasks draw from separate streams that never overlap.

Batches are dicts shaped like :meth:`SequenceDataset.batch` output (``xs``,
``lengths``, ``y``), the copy task adding ``weights``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jlstm.data._validate import check_int

_ADDING, _COPY = 0, 1
_TRAIN, _TEST = 0, 1


def _rng(seed: int, task: int, split: int, step: int) -> np.random.Generator:
    seed = check_int("seed", seed, minimum=0)
    step = check_int("step", step, minimum=0)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(task, split, step)))


def _adding(rng: np.random.Generator, batch_size: int, length: int) -> dict[str, np.ndarray]:
    b = check_int("batch_size", batch_size, minimum=1)
    t = check_int("length", length, minimum=2)
    values = rng.random((b, t))
    first = rng.integers(0, t // 2, size=b)  # one marker in the first half
    second = rng.integers(t // 2, t, size=b)  # one in the second half
    markers = np.zeros((b, t))
    markers[np.arange(b), first] = 1.0
    markers[np.arange(b), second] = 1.0
    xs = np.stack([values, markers], axis=-1).astype(np.float32)  # (B, T, 2)
    y = (values * markers).sum(axis=1, keepdims=True).astype(np.float32)  # (B, 1)
    return {"xs": xs, "lengths": np.full(b, t, np.int32), "y": y}


def make_adding_batch(seed: int, step: int, batch_size: int, length: int) -> dict:
    """Training batch ``step`` of the adding problem (Hochreiter & Schmidhuber 1997;
    the variant of Le, Jaitly & Hinton 2015).

    Channel 0 holds uniform values in [0, 1); channel 1 is 1 at exactly two steps,
    one in ``[0, length // 2)`` and one in ``[length // 2, length)``, else 0. The
    target is the sum of the two marked values. Predicting 1.0 always gives an MSE
    of 1/6 (about 0.167), the bar a model must beat.

    Shapes:
      -> xs: (batch_size, length, 2) float32; lengths: (batch_size,) int32 (all
         ``length``); y: (batch_size, 1) float32
    """
    return _adding(_rng(seed, _ADDING, _TRAIN, step), batch_size, length)


def adding_test_set(seed: int, n: int, length: int) -> dict:
    """A fixed adding-problem test set of ``n`` examples, disjoint from the training stream.

    Shapes: as :func:`make_adding_batch` with ``batch_size = n``.
    """
    return _adding(_rng(seed, _ADDING, _TEST, 0), check_int("n", n, minimum=1), length)


def copy_vocab_size(alphabet: int) -> int:
    """Input ids for the copy task: 0 blank, 1..alphabet symbols, alphabet + 1 delimiter."""
    return check_int("alphabet", alphabet, minimum=1) + 2


def _copy(rng, batch_size, gap, num_symbols, alphabet) -> dict[str, np.ndarray]:
    b = check_int("batch_size", batch_size, minimum=1)
    g = check_int("gap", gap, minimum=0)
    s = check_int("num_symbols", num_symbols, minimum=1)
    a = check_int("alphabet", alphabet, minimum=1)
    t = 2 * s + g + 1
    symbols = rng.integers(1, a + 1, size=(b, s))
    xs = np.zeros((b, t), np.int32)
    xs[:, :s] = symbols
    xs[:, s + g] = a + 1  # the delimiter
    y = np.zeros((b, t), np.int32)
    y[:, t - s :] = symbols
    weights = np.zeros((b, t), np.float32)
    weights[:, t - s :] = 1.0
    return {"xs": xs, "lengths": np.full(b, t, np.int32), "y": y, "weights": weights}


def make_copy_batch(
    seed: int, step: int, batch_size: int, *, gap: int, num_symbols: int = 10, alphabet: int = 8
) -> dict:
    """Training batch ``step`` of the copy task (Hochreiter & Schmidhuber 1997;
    layout of Arjovsky, Shah & Bengio 2016).

    Inputs are int ids (embed or one-hot them; ``copy_vocab_size(alphabet)`` ids):
    0 blank, ``1..alphabet`` symbols, ``alphabet + 1`` the delimiter. With
    ``S = num_symbols`` and length ``T = 2 * S + gap + 1``:

      step:    [0, S)     [S, S + gap)   S + gap     [S + gap + 1, T)
      xs:      symbols    blanks         delimiter   blanks
      y:       0          0              0           the S symbols, in order
      weights: 0          0              0           1

    The loss is meant to be averaged over the answer steps (``weights``); guessing
    uniformly there costs ``log(alphabet)`` nats per step. Targets are ids in
    ``0..alphabet``.

    Shapes:
      -> xs: (B, T) int32; lengths: (B,) int32 (all T); y: (B, T) int32;
         weights: (B, T) float32
    """
    return _copy(_rng(seed, _COPY, _TRAIN, step), batch_size, gap, num_symbols, alphabet)


def copy_test_set(seed: int, n: int, *, gap: int, num_symbols: int = 10, alphabet: int = 8) -> dict:
    """A fixed copy-task test set of ``n`` examples, disjoint from the training stream."""
    n = check_int("n", n, minimum=1)
    return _copy(_rng(seed, _COPY, _TEST, 0), n, gap, num_symbols, alphabet)


@dataclasses.dataclass(frozen=True)
class AddingTask:
    """The adding problem at one ``length`` and ``seed``, for :func:`load_dataset`."""

    length: int
    seed: int = 0
    input_size = 2

    def train_batch(self, step: int, batch_size: int) -> dict:
        return make_adding_batch(self.seed, step, batch_size, self.length)

    def test_set(self, n: int) -> dict:
        return adding_test_set(self.seed, n, self.length)


@dataclasses.dataclass(frozen=True)
class CopyTask:
    """The copy task with one layout and ``seed``, for :func:`load_dataset`."""

    gap: int
    num_symbols: int = 10
    alphabet: int = 8
    seed: int = 0

    @property
    def vocab_size(self) -> int:
        return copy_vocab_size(self.alphabet)

    def train_batch(self, step: int, batch_size: int) -> dict:
        return make_copy_batch(self.seed, step, batch_size, **self._layout())

    def test_set(self, n: int) -> dict:
        return copy_test_set(self.seed, n, **self._layout())

    def _layout(self) -> dict:
        return dict(gap=self.gap, num_symbols=self.num_symbols, alphabet=self.alphabet)
