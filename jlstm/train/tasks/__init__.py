"""From a config to a :class:`Task`: the model, its data, its loss and metrics.

``config.task`` picks what is learnt, ``config.data.name`` the data set:

==============  =============================================  =========================
task            data sets                                      model
==============  =============================================  =========================
classification  ``japanese_vowels`` (any UCR/UEA name or .ts), SequenceClassifier
                ``mnist1d``
regression      ``adding``, ``sunspots``                       SequenceRegressor
tagging         ``copy``                                       SequenceTagger
matching        a UCR/UEA name (pairs: same class or not)      SiameseMatcher
charlm          ``shakespeare``, ``pydoc``, ``text`` (a file)  CharLM, truncated BPTT
==============  =============================================  =========================
"""

from __future__ import annotations

import jax
from flax import nnx

from jlstm.data import ucr
from jlstm.train.tasks.base import (
    ATTENTIONS,
    POOLINGS,
    SIMILARITIES,
    TASKS,
    Task,
    pad_rows,
    split_rows,
)

# Data sets by kind, and the tasks each kind supports.
_KINDS = {
    "adding": "adding",
    "copy": "copy",
    "sunspots": "sunspots",
    "mnist1d": "mnist1d",
    "shakespeare": "text",
    "pydoc": "text",
    "text": "text_file",
}
DATASET_TASKS = {
    "adding": ("regression",),
    "copy": ("tagging",),
    "sunspots": ("regression",),
    "mnist1d": ("classification",),
    "ucr": ("classification", "matching"),
    "text": ("charlm",),
    "text_file": ("charlm",),
}


def dataset_kind(name) -> str | None:
    """The kind of data set ``config.data.name`` names (a key of DATASET_TASKS), or None."""
    if not isinstance(name, str):
        return None
    if name in _KINDS:
        return _KINDS[name]
    if ucr.is_path(name) or ucr.find_ucr(name) is not None:
        return "ucr"
    return None


def dataset_names() -> list[str]:
    """Names ``config.data.name`` accepts (besides paths to .ts files)."""
    return [*_KINDS, *sorted(ucr.list_ucr_datasets())]


def make_task(config, init_key: jax.Array) -> Task:
    """Build the task ``config`` describes; the model's parameters come from ``init_key``."""
    from jlstm.train.tasks import charlm, classification, matching, regression, tagging

    rngs = nnx.Rngs(init_key)
    kind, task = dataset_kind(config.data.name), config.task
    if task == "classification":
        return classification.classification_task(config, rngs)
    if task == "matching":
        return matching.matching_task(config, rngs)
    if task == "charlm":
        return charlm.charlm_task(config, rngs)
    if kind == "adding":
        return regression.adding_task(config, rngs)
    if kind == "sunspots":
        return regression.sunspots_task(config, rngs)
    if kind == "copy":
        return tagging.copy_task(config, rngs)
    raise ValueError(f"config.task {task!r} does not fit config.data.name {config.data.name!r}")


__all__ = [
    "ATTENTIONS",
    "DATASET_TASKS",
    "POOLINGS",
    "SIMILARITIES",
    "TASKS",
    "Task",
    "dataset_kind",
    "dataset_names",
    "make_task",
    "pad_rows",
    "split_rows",
]
