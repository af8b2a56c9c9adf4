"""What every task gives the training loop, and the helpers the tasks share."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec

from jlstm import cells
from jlstm.train.errors import ConfigError

TASKS = ("classification", "regression", "tagging", "matching", "charlm")
POOLINGS = ("last", "mean", "max", "attention")
ATTENTIONS = ("additive", "dot")
SIMILARITIES = ("cosine", "dot")


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A model, its data and its loss, ready for :func:`~jlstm.train.train_and_evaluate`.

    Attributes:
      model: the initialised NNX model.
      train_batch: ``step -> batch``, a dict of NumPy arrays; a pure function of
        ``(config.seed, step)``, which is what makes a resumed run draw the same
        batches as an uninterrupted one.
      eval_batches: ``() -> batches`` of the fixed evaluation set, each padded
        to ``config.data.eval_batch_size`` rows with a ``weight`` (B,) bool
        marking the real ones.
      loss_fn: ``(model, batch, carry, dropout_key) -> (loss, (metrics, carry))``.
      eval_fn: ``(model, batch, carry) -> ({name: (mean, count)}, carry)``.
      test_batches: ``() -> batches`` of a held-out test set evaluated once, after
        training, when ``eval_batches`` is a validation set; its metrics join the
        final ones as ``test_<name>``. None: the evaluation set is the test set.
      headline: the evaluation metric the summary leads with.
      description: one line on the data (sizes, shapes).
      baselines: reference values of evaluation metrics (a trivial predictor).
      init_carry: the carry at a stream's start (truncated BPTT), else None;
        ``eval_carry`` likewise for evaluation.
      carry_spec: how the carry splits over the device mesh (a ``PartitionSpec``
        for every leaf); ``eval_carry_spec`` likewise for ``eval_carry``, or a
        pytree prefix of it with one per part (None: ``carry_spec``).
      finish: ``metrics -> metrics`` adding derived final metrics (e.g. an RMSE
        in the data's own units).
      report: ``(model, workdir) -> dict`` run once after training on the
        process that writes files, with the trained model on the host: writes
        what shows the result to a person (a text sample, a PNG of attention
        weights) and returns summary entries (``{"files": {name: path}, ...}``);
        None: nothing to add.
    """

    model: nnx.Module
    train_batch: Callable[[int], dict[str, np.ndarray]]
    eval_batches: Callable[[], Iterable[dict[str, np.ndarray]]]
    loss_fn: Callable
    eval_fn: Callable
    headline: str
    description: str
    baselines: dict[str, float] = dataclasses.field(default_factory=dict)
    test_batches: Callable[[], Iterable[dict[str, np.ndarray]]] | None = None
    init_carry: Any = None
    eval_carry: Any = None
    carry_spec: PartitionSpec | None = None
    eval_carry_spec: Any = None
    finish: Callable[[dict], dict] = lambda metrics: metrics
    report: Callable[[nnx.Module, Path], dict] | None = None


def pad_rows(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Fill a batch up to ``size`` rows with copies of its first row; add ``weight``.

    Shapes:
      batch arrays: (n, ...) with n <= size -> (size, ...); weight: (size,) bool
    """
    n = len(next(iter(batch.values())))
    fill = lambda a: np.concatenate([a, np.repeat(a[:1], size - n, axis=0)]) if n < size else a
    padded = {k: fill(np.asarray(v)) for k, v in batch.items()}
    padded["weight"] = np.arange(size) < n
    return padded


def split_rows(arrays: dict[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Cut a dict of equally long arrays into batches of ``size`` rows, the last padded."""
    n = len(next(iter(arrays.values())))
    for start in range(0, n, size):
        yield pad_rows({k: v[start : start + size] for k, v in arrays.items()}, size)


def recurrent_options(model) -> dict:
    """The recurrent layers' options from ``config.model`` (:class:`jlstm.nn.Recurrent`):
    the cell, the implementation, layers, dropout, direction, and the LSTM's forget bias."""
    implementation = model.implementation
    if implementation == "parallel":  # Newton's iterations go to the metric log
        from jlstm.parallel import Parallel
        from jlstm.train.logging import NEWTON

        implementation = Parallel(report=NEWTON)
    options = dict(
        cell=model.cell,
        implementation=implementation,
        num_layers=model.num_layers,
        dropout=model.dropout,
        recurrent_dropout=model.recurrent_dropout,
        zoneout=model.zoneout,
        learn_initial_state=model.learn_initial_state,
    )
    if "bidirectional" in model:
        options["bidirectional"] = model.bidirectional
    takes = _init_options(model.cell)
    # Each cell option goes to the cells that have it; set for another cell, it is an error.
    for field, option, default, owners in (
        ("forget_bias", "forget_bias", 1.0, "the LSTM's forget gate"),
        ("proj_size", "proj_size", 0, "the projection size of cell='lstmp'"),
        ("cell_heads", "num_heads", 1, "the heads of cell='slstm' | 'slstm_exp'"),
    ):
        value = model.get(field, default)
        if option in takes:
            if not (field == "proj_size" and value == 0):  # 0: the cell's default
                options[option] = value
        elif value != default:
            raise ConfigError(
                f"config.model.{field} sets {owners}; the {model.cell!r} cell has none "
                f"(got {field}={value!r}; leave it at {default!r})"
            )
    eps = model.get("layernorm_eps", LAYERNORM_EPS)
    if model.cell == "layernorm_lstm":
        options["cell"] = cells.get("layernorm_lstm").__class__(eps=eps)
    elif eps != LAYERNORM_EPS:
        raise ConfigError(
            f"config.model.layernorm_eps sets the epsilon of cell='layernorm_lstm'; the "
            f"{model.cell!r} cell has none (got layernorm_eps={eps!r}; leave it at "
            f"{LAYERNORM_EPS!r})"
        )
    return options


LAYERNORM_EPS = 1e-5  # configs/default.py's, and the cell's own default


def _init_options(cell: str) -> set[str]:
    """The keyword options of a registered cell's ``init``."""
    return set(inspect.signature(cells.get(cell).init).parameters)


def sequence_model_options(model) -> dict:
    """The keyword options shared by the pooled sequence models, from ``config.model``."""
    return dict(
        **recurrent_options(model),
        pooling=model.pooling,
        attention=model.attention,
        num_heads=model.num_heads,
    )


def weighted(value, mask) -> tuple:
    """An eval metric as ``(mean over the mask, how many items it covers)``."""
    return value, mask.sum()
