"""Check a config before any work: every key known, every value of the right type
and in range. Errors name the key, what was expected and what arrived.

The schema below says what each field must be; it holds no defaults (those live
only in the config files).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from pathlib import Path

import ml_collections

from jlstm import cells, implementation
from jlstm.data import ucr
from jlstm.train import tasks
from jlstm.train.errors import ConfigError
from jlstm.train.optim import OPTIMIZERS, SCHEDULES


@dataclasses.dataclass(frozen=True)
class Field:
    """One field: its Python type, and the range or the choices it must respect."""

    type: type
    low: float | None = None  # smallest allowed value
    high: float | None = None  # largest allowed value
    open_low: bool = False  # low itself is not allowed
    open_high: bool = False  # high itself is not allowed
    choices: tuple | None = None

    def check(self, key: str, value) -> None:
        if self.type is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.type)
        if not ok:
            name = self.type.__name__
            article = "an" if name[0] in "aeiou" else "a"
            raise ConfigError(
                f"{key} must be {article} {name}; got {type(value).__name__} {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{key} must be one of {_names(self.choices)}; got {value!r}")
        if self.type is float and not math.isfinite(value):
            raise ConfigError(f"{key} must be finite; got {value!r}")
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            raise ConfigError(
                f"{key} must be {'>' if self.open_low else '>='} {self.low}; got {value!r}"
            )
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            raise ConfigError(
                f"{key} must be {'<' if self.open_high else '<='} {self.high}; got {value!r}"
            )


def _names(choices) -> str:
    return ", ".join(repr(c) for c in choices)


POSITIVE = Field(int, low=1)
NON_NEGATIVE = Field(int, low=0)
FLAG = Field(bool)
RATE = Field(float, low=0.0, high=1.0, open_high=True)  # dropout, momentum: [0, 1)

TOP = {"seed": NON_NEGATIVE, "task": Field(str, choices=tasks.TASKS)}
SECTIONS = ("model", "data", "optim", "train")

OPTIM = {
    "name": Field(str, choices=OPTIMIZERS),
    "learning_rate": Field(float, low=0.0, open_low=True),
    "schedule": Field(str, choices=SCHEDULES),
    "warmup_steps": NON_NEGATIVE,
    "decay_steps": POSITIVE,
    "final_lr_fraction": Field(float, low=0.0, high=1.0),
    "grad_clip_norm": Field(float, low=0.0),  # 0 turns clipping off
    "weight_decay": Field(float, low=0.0),
    "momentum": RATE,
}

TRAIN = {
    "num_steps": POSITIVE,
    "log_every": POSITIVE,
    "eval_every": POSITIVE,
    "checkpoint_every": POSITIVE,
    "keep_checkpoints": POSITIVE,
    "tensorboard": FLAG,  # also write TensorBoard event files
}

TRAIN_BY_TASK = {  # fields of config.train that only some tasks have
    "charlm": {
        "sample_chars": NON_NEGATIVE,  # 0: no sample at the end
        "sample_temperature": Field(float, low=0.0),  # 0: greedy
    },
}

_RECURRENT = {
    "cell": Field(str, choices=cells.names()),
    "implementation": Field(str, choices=implementation.NAMES),
    "recurrent_dropout": RATE,
    "zoneout": RATE,
    "learn_initial_state": FLAG,
    "proj_size": NON_NEGATIVE,
    "cell_heads": POSITIVE,
    "layernorm_eps": Field(float, low=0.0, open_low=True),
}
_SEQUENCE_MODEL = {
    **_RECURRENT,
    "hidden_size": POSITIVE,
    "forget_bias": Field(float),
    "num_layers": POSITIVE,
    "bidirectional": FLAG,
    "dropout": RATE,
    "pooling": Field(str, choices=tasks.POOLINGS),
    "attention": Field(str, choices=tasks.ATTENTIONS),
    "num_heads": POSITIVE,
}
MODEL = {
    "classification": _SEQUENCE_MODEL,
    "regression": _SEQUENCE_MODEL,
    "matching": {**_SEQUENCE_MODEL, "similarity": Field(str, choices=tasks.SIMILARITIES)},
    "tagging": {
        **_RECURRENT,
        "hidden_size": POSITIVE,
        "forget_bias": Field(float),
        "num_layers": POSITIVE,
        "bidirectional": FLAG,
        "dropout": RATE,
    },
    "charlm": {
        **_RECURRENT,
        "hidden_size": POSITIVE,
        "forget_bias": Field(float),
        "embed_dim": POSITIVE,
        "num_layers": POSITIVE,
        "dropout": RATE,
        "cache_size": NON_NEGATIVE,  # 0: no cache
        "cache_theta": Field(float, low=0.0),
        "cache_lambda": Field(float, low=0.0, high=1.0),
    },
}

_BATCHES = {"name": Field(str), "batch_size": POSITIVE, "eval_batch_size": POSITIVE}
_TEXT = {
    **_BATCHES,
    "chunk_length": POSITIVE,  # truncated BPTT
    "eval_chunk_length": POSITIVE,
    "reset_every": NON_NEGATIVE,  # chunks between staggered state resets (0: each pass)
    "val_fraction": Field(float, low=0.0, high=1.0, open_low=True, open_high=True),
    "max_chars": NON_NEGATIVE,
    "path": Field(str),  # the text file, read with name "text" (else "")
}
DATA = {  # by dataset kind (tasks.dataset_kind)
    "adding": {**_BATCHES, "length": Field(int, low=2), "test_size": POSITIVE},
    "copy": {
        **_BATCHES,
        "gap": NON_NEGATIVE,
        "num_symbols": POSITIVE,
        "alphabet": POSITIVE,
        "test_size": POSITIVE,
    },
    "sunspots": {**_BATCHES, "window": POSITIVE, "horizon": POSITIVE},
    "mnist1d": {**_BATCHES, "standardize": FLAG},
    "ucr": {**_BATCHES, "standardize": FLAG},
    "ucr_pairs": {**_BATCHES, "standardize": FLAG, "test_pairs": POSITIVE},
    "text": _TEXT,
    "text_file": _TEXT,
}


def check_config(config: Mapping) -> None:
    """Raise :class:`ConfigError` naming the first key that is missing, unknown,
    of the wrong type, or out of range; return None when the config can run."""
    _check_section("config", config, {**TOP, **{s: None for s in SECTIONS}})
    task = config["task"]
    kind = tasks.dataset_kind(config["data"]["name"])
    if kind is None:
        raise ConfigError(
            f"config.data.name must be a known dataset ({_names(tasks.dataset_names())}) "
            f"or a folder NAME/ holding the UCR/UEA files NAME_TRAIN.ts and NAME_TEST.ts; "
            f"got {config['data']['name']!r}"
        )
    allowed = tasks.DATASET_TASKS[kind]
    if task not in allowed:
        raise ConfigError(
            f"config.task must be one of {_names(allowed)} for the dataset "
            f"{config['data']['name']!r}; got {task!r}"
        )
    if kind == "ucr" and task == "matching":
        kind = "ucr_pairs"
    _check_section("config.data", config["data"], DATA[kind])
    _check_data_files(config["data"], kind)
    _check_section("config.model", config["model"], MODEL[task], what=f"a {task} model")
    # train before optim: optim.decay_steps follows train.num_steps in the shipped
    # configs, so a bad --config.train.num_steps is reported under its own name.
    _check_section("config.train", config["train"], {**TRAIN, **TRAIN_BY_TASK.get(task, {})})
    _check_section("config.optim", config["optim"], OPTIM)

    optim = config["optim"]
    if optim["schedule"] == "warmup_cosine" and optim["warmup_steps"] >= optim["decay_steps"]:
        raise ConfigError(
            f"config.optim.warmup_steps must be < config.optim.decay_steps "
            f"({optim['decay_steps']}) with the warmup_cosine schedule; got {optim['warmup_steps']}"
        )


def _check_data_files(data: Mapping, kind: str) -> None:
    """The files ``config.data`` names exist and are what the loader reads: a UCR/UEA
    folder with both splits (a single .ts file is not enough), the text file of
    ``name="text"``."""
    name = data["name"]
    if kind in ("ucr", "ucr_pairs") and ucr.is_path(name):
        folder = Path(name)
        if folder.suffix == ".ts" or folder.is_file():
            stem, _, split = folder.stem.rpartition("_")
            in_its_folder = split.upper() in ("TRAIN", "TEST") and folder.parent.name == stem
            hint = (
                f"; did you mean its folder {str(folder.parent)!r}?"
                if in_its_folder
                else "; put it in a folder NAME/ as NAME_TRAIN.ts, with NAME_TEST.ts beside it"
            )
            raise ConfigError(
                f"config.data.name must be a UCR/UEA name or a folder NAME/ holding "
                f"NAME_TRAIN.ts and NAME_TEST.ts (training reads both splits); got the file "
                f"{name!r}{hint}"
            )
        for split in ("TRAIN", "TEST"):
            path = folder / f"{folder.name}_{split}.ts"
            if not path.is_file():
                raise ConfigError(
                    f"config.data.name must be a folder NAME/ holding NAME_TRAIN.ts and "
                    f"NAME_TEST.ts; got {name!r}, where {path} does not exist"
                )
    if kind == "text_file" and not Path(data["path"]).is_file():
        raise ConfigError(
            f"config.data.path must be an existing text file with config.data.name 'text'; "
            f"got {data['path']!r}"
        )
    if kind == "text" and data["path"]:
        raise ConfigError(
            f"config.data.path is read only with config.data.name 'text' (set it to '' or the "
            f"name to 'text'); got the path {data['path']!r} with the name {name!r}"
        )


def _check_section(prefix: str, section, fields: Mapping, *, what: str = "") -> None:
    if not isinstance(section, Mapping | ml_collections.ConfigDict):
        raise ConfigError(f"{prefix} must be a ConfigDict; got {type(section).__name__}")
    for key in section.keys():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            scope = f" of {what}" if what else ""
            raise ConfigError(
                f"{prefix}.{key} is not a field{scope}; the fields are "
                f"{', '.join(sorted(fields))}{hint}"
            )
    for key, field in fields.items():
        if key not in section:
            raise ConfigError(f"{prefix}.{key} is missing")
        if field is not None:
            field.check(f"{prefix}.{key}", section[key])
