"""UCR/UEA time-series archive: a reader of the ``.ts`` text format and a loader.

The format (timeseriesclassification.com): ``#`` comments, ``@key value`` header
lines (``@problemName``, ``@univariate``, ``@equalLength``, ``@missing``,
``@timeStamps``, ``@classLabel true 1 2 ...`` or ``@targetLabel true`` for
regression), then ``@data`` and one case per line: channels separated by ``:``,
values by ``,``, ``?`` for a missing value, the label last. Header keys are
case-insensitive.

Datasets are found by name, in this order: files committed under
``jlstm/data/files/ucr/NAME/NAME_{TRAIN,TEST}.ts``; the ``datasets/data/NAME/``
folder of an installed aeon or sktime (located without importing either, since
importing aeon pulls in numba). Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np

from jlstm.data.batching import SequenceDataset
from jlstm.data.errors import DataError, DataFileNotFoundError, read_text_file

_BOOL_KEYS = ("timestamps", "missing", "univariate", "equallength", "targetlabel")
_INT_KEYS = ("dimensions", "serieslength")
_FILES = Path(__file__).parent / "files" / "ucr"


def _parse_header(lines, path) -> tuple[dict, int]:
    """Reads header lines up to ``@data``; returns (header, index of the first data line)."""
    header = {
        "problemname": "",
        "timestamps": False,
        "missing": False,
        "classlabel": False,
        "class_values": [],
        "targetlabel": False,
    }
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if line[0] != "@":
            raise DataError(
                f"{path}:{i + 1}: expected a '#' comment or an '@key value' header before "
                f"@data; got {line[:40]!r}"
            )
        key, *values = line[1:].split()
        key = key.lower()
        if key == "data":
            return header, i + 1
        if key in _BOOL_KEYS or key == "classlabel":
            flag = values[0].lower() if values else ""
            if flag not in ("true", "false"):
                raise DataError(f"{path}:{i + 1}: @{key} must be true or false; got {line!r}")
            header[key] = flag == "true"
            if key == "classlabel":
                header["class_values"] = values[1:]
                if header[key] and not values[1:]:
                    raise DataError(f"{path}:{i + 1}: @classLabel true must list the labels")
        elif key in _INT_KEYS:
            try:
                header[key] = int(values[0])
            except (IndexError, ValueError):
                raise DataError(
                    f"{path}:{i + 1}: @{key} must be an integer; got {line!r}"
                ) from None
        else:
            header[key] = " ".join(values)
    raise DataError(f"{path}: no @data line; a .ts file needs a header ending in @data")


def _split_case(line: str, timestamps: bool, labelled: bool) -> tuple[list[str], str | None]:
    """Splits a data line into comma-separated value strings per channel, and the label."""
    if timestamps:  # channels look like (time,value),(time,value); times may hold ':'
        parts = re.split(r"(?<=\))\s*:", line)
        channels = [
            ",".join(pair.rsplit(",", 1)[-1] for pair in re.findall(r"\(([^()]*)\)", part))
            for part in parts[: len(parts) - labelled]
        ]
    else:
        parts = line.split(":")
        channels = parts[: len(parts) - labelled]
    return channels, (parts[-1].strip() if labelled else None)


def load_ts(path) -> tuple[list[np.ndarray], np.ndarray | None, dict]:
    """Reads one ``.ts`` file.

    Returns:
      series: one float32 array (T_i, C) per case; ``?`` (missing) becomes NaN.
      labels: (N,) strings for classification (as written in the file), float64
        for regression (``@targetLabel true``), or None for an unlabelled file.
      header: the header, keys lower-cased: ``problemname``, booleans
        ``timestamps``, ``missing``, ``univariate``, ``equallength``,
        ``classlabel``, ``targetlabel``, ``class_values`` (labels in header
        order), ints ``dimensions`` / ``serieslength`` where given, and any other
        key as its raw string.

    Raises :class:`~jlstm.data.DataError` naming the file (and the line) for a
    file that is missing, not text, or not in the format.

    Shapes:
      -> series: N arrays (T_i, C); labels: (N,)
    """
    series, labels, header, _ = _load_ts(Path(path))
    return series, labels, header


def _read_lines(path: Path) -> list[str]:
    """The lines of a .ts file; bytes that are not UTF-8 are tolerated in comments only."""
    try:
        return read_text_file(path, what="a .ts file").splitlines()
    except DataError:
        if not path.is_file():
            raise
        raw = path.read_bytes()
        lines = raw.decode("utf-8", errors="replace").splitlines()
        bad = [line.strip() for line in lines if "\ufffd" in line]
        if b"\x00" not in raw and all(line[0] in "#%" for line in bad):
            return lines
        raise


def _load_ts(path: Path):
    """:func:`load_ts`, plus the line number of each case."""
    lines = _read_lines(path)
    header, start = _parse_header(lines, path)
    labelled = header["classlabel"] or header["targetlabel"]
    classes = header["class_values"]
    series, labels, numbers = [], [], []
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line or line[0] in "#%":
            continue
        where = f"{path}:{i + 1}"
        channels, label = _split_case(line, header["timestamps"], labelled)
        if not channels:
            raise DataError(
                f"{where}: the label is missing: expected channels, then ':' and the label; "
                f"got {line[:40]!r}"
            )
        if labelled and not label:
            raise DataError(f"{where}: the label is missing (nothing after the last ':')")
        looks_like_values = label is not None and (
            "," in label or (header["classlabel"] and label not in classes)
        )
        try:
            values = [np.array(c.replace("?", "nan").split(","), np.float64) for c in channels]
        except ValueError as e:
            raise DataError(f"{where}: values must be numbers or '?'; {e}") from None
        if len({len(v) for v in values}) != 1:
            raise DataError(
                f"{where}: every channel of a case must have the same length; "
                f"got lengths {[len(v) for v in values]}"
            )
        if series and len(values) != series[0].shape[1]:
            expected = series[0].shape[1]
            if len(values) == expected - 1 and looks_like_values:
                raise DataError(
                    f"{where}: the label is missing: expected {expected} channels and the "
                    f"label like the first case; got {expected} ':'-separated parts of values"
                )
            raise DataError(
                f"{where}: expected {expected} channels like the first case; got {len(values)}"
            )
        if header["classlabel"] and label not in classes:
            hint = " (the line ends in values: is its label missing?)" if "," in label else ""
            raise DataError(
                f"{where}: the label {label!r} is not among @classLabel {classes}{hint}"
            )
        series.append(np.stack(values, axis=1).astype(np.float32))
        labels.append(label)
        numbers.append(i + 1)
    if not series:
        raise DataError(f"{path}: no cases after @data")
    _check_header(header, series, path)
    if not labelled:
        return series, None, header, numbers
    if header["targetlabel"]:
        try:
            return series, np.array(labels, np.float64), header, numbers
        except ValueError as e:
            raise DataError(f"{path}: regression targets must be numbers; {e}") from None
    return series, np.array(labels), header, numbers


def _check_header(header: dict, series: list[np.ndarray], path) -> None:
    """Checks the data against the header's @dimensions, @univariate, @equalLength."""
    channels = series[0].shape[1]
    lengths = sorted({s.shape[0] for s in series})
    if header.get("dimensions", channels) != channels:
        raise DataError(f"{path}: @dimensions {header['dimensions']}, but cases have {channels}")
    if header.get("univariate") and channels != 1:
        raise DataError(f"{path}: @univariate true, but cases have {channels} channels")
    if header.get("equallength") and len(lengths) > 1:
        raise DataError(f"{path}: @equalLength true, but lengths range {lengths[0]}..{lengths[-1]}")
    if header.get("equallength") and header.get("serieslength", lengths[0]) != lengths[0]:
        raise DataError(f"{path}: @seriesLength {header['serieslength']}, but cases have {lengths}")


def _search_dirs() -> list[Path]:
    """Folders holding NAME/NAME_TRAIN.ts: ours, then aeon's and sktime's (not imported)."""
    dirs = [_FILES]
    for package in ("aeon", "sktime"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for root in (spec and spec.submodule_search_locations) or ():
            dirs.append(Path(root) / "datasets" / "data")
    return [d for d in dirs if d.is_dir()]


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def find_ucr(name: str) -> Path | None:
    """The first folder named like ``name`` (case, '_' and '-' ignored) holding a train file."""
    for root in _search_dirs():
        for folder in sorted(root.iterdir()):
            if _key(folder.name) == _key(name) and (folder / f"{folder.name}_TRAIN.ts").is_file():
                return folder
    return None


def list_ucr_datasets() -> list[str]:
    """Names that :func:`load_ucr` finds without a path (ours, aeon's, sktime's)."""
    names = {
        folder.name
        for root in _search_dirs()
        for folder in root.iterdir()
        if (folder / f"{folder.name}_TRAIN.ts").is_file()
    }
    return sorted(names)


def is_path(name_or_path) -> bool:
    """True when the argument reads as a path (a ``.ts`` suffix or a folder separator)."""
    text = os.fspath(name_or_path)
    return isinstance(name_or_path, os.PathLike) or text.endswith(".ts") or os.sep in text


def _resolve(name_or_path, split: str | None) -> Path:
    """The .ts file for a name and split, a folder and split, or a file path."""
    if split is not None and str(split).lower() not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if is_path(name_or_path):
        path = Path(name_or_path)
        if path.is_file():
            if split is not None:
                raise ValueError(
                    f"split must be None when name_or_path is a .ts file ({path}); got {split!r}"
                )
            return path
        if not path.is_dir():
            raise DataFileNotFoundError(
                f"name_or_path {str(path)!r} is neither a file nor a folder"
            )
        folder = path
    else:
        folder = find_ucr(name_or_path)
        if folder is None:
            raise DataError(
                f"name_or_path must name a UCR/UEA dataset available offline "
                f"({', '.join(list_ucr_datasets())}) or be a path to a .ts file or to a "
                f"folder NAME/ holding NAME_TRAIN.ts; got {name_or_path!r}"
            )
    if split is None:
        raise ValueError(f"split must be 'train' or 'test' for dataset {folder.name!r}; got None")
    path = folder / f"{folder.name}_{split.upper()}.ts"
    if not path.is_file():
        raise DataFileNotFoundError(
            f"no {split.lower()} file for {folder.name!r}: {path} does not exist"
        )
    return path


def _label_kind(header: dict) -> str:
    if header["classlabel"]:
        return "class labels (@classLabel true)"
    if header["targetlabel"]:
        return "regression targets (@targetLabel true)"
    return "no labels"


def _train_reference(test_path: Path) -> tuple[Path, dict, int]:
    """The TRAIN file next to ``test_path``: its path, header and number of channels
    (read from its first case only)."""
    folder = test_path.parent
    train_path = folder / f"{folder.name}_TRAIN.ts"
    if not train_path.is_file():
        raise DataFileNotFoundError(
            f"no train file for {folder.name!r}: {train_path} does not exist (the test split "
            f"takes its classes from it)"
        )
    lines = _read_lines(train_path)
    header, start = _parse_header(lines, train_path)
    labelled = header["classlabel"] or header["targetlabel"]
    for line in lines[start:]:
        line = line.strip()
        if line and line[0] not in "#%":
            channels, _ = _split_case(line, header["timestamps"], labelled)
            return train_path, header, len(channels)
    raise DataError(f"{train_path}: no cases after @data")


def _check_against_train(path: Path, header: dict, series: list[np.ndarray]):
    """Raise unless the TEST file at ``path`` labels its cases like its TRAIN file and has
    as many channels; return (train path, TRAIN's class list)."""
    train_path, train_header, train_channels = _train_reference(path)
    if _label_kind(header) != _label_kind(train_header):
        raise DataError(
            f"{path}: {_label_kind(header)}, but {train_path} has {_label_kind(train_header)}; "
            f"the two splits must be labelled alike"
        )
    channels = series[0].shape[1]
    if channels != train_channels:
        raise DataError(
            f"{path}: cases have {channels} channels; {train_path} has {train_channels}"
        )
    return train_path, train_header["class_values"]


def load_ucr(name_or_path, split: str | None = None, *, classes=None) -> SequenceDataset:
    """Loads one split of a UCR/UEA dataset as a :class:`SequenceDataset`.

    Args:
      name_or_path: a dataset name (``"JapaneseVowels"``; case, ``_`` and ``-``
        are ignored, so ``"japanese_vowels"`` works), a folder ``NAME/`` holding
        ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``, or a path to one ``.ts`` file.
      split: ``"train"`` or ``"test"``; must be None for a file path.
      classes: the class labels in id order (e.g. the training split's
        ``class_names``); default: the TRAIN file's ``@classLabel`` list, for
        the test split too.

    Class labels become ids ``0..K-1`` in the order of the TRAIN file's
    ``@classLabel`` list (or of ``classes``; a lone file: its own list), so
    train and test share one mapping whatever order the TEST header lists its
    classes in; the original labels are kept in ``class_names``. The test split
    is checked against the TRAIN file: a class that TRAIN lacks, another number
    of channels or another kind of label raises :class:`~jlstm.data.DataError`.
    Regression files give float32 targets.

    Shapes:
      -> inputs: N arrays (T_i, C) float32; targets: (N,) int32 class ids or
         (N,) float32 regression targets

    >>> ds = load_ucr("JapaneseVowels", "train")
    >>> len(ds), ds.feature_size, ds.num_classes, ds.max_length
    (270, 12, 9, 26)
    """
    path = _resolve(name_or_path, split)
    series, labels, header, numbers = _load_ts(path)
    name = (
        f"{header['problemname']}/{split.lower()}" if header["problemname"] and split else path.stem
    )
    if labels is None:
        raise DataError(f"{path}: has no labels (@classLabel or @targetLabel true)")
    where = None  # the TRAIN file the classes come from (the test split of a data set)
    if split is not None and split.lower() == "test":
        train_path, train_classes = _check_against_train(path, header, series)
        if classes is None:
            classes, where = train_classes, train_path
    if header["targetlabel"]:
        return SequenceDataset(series, labels.astype(np.float32), name=name)
    given = classes is not None and where is None
    classes = [str(c) for c in (header["class_values"] if classes is None else classes)]
    index = {label: k for k, label in enumerate(classes)}
    for label, number in zip(labels, numbers, strict=True):
        if label in index:
            continue
        if given:
            raise DataError(f"{path}:{number}: class {str(label)!r} is not among classes {classes}")
        raise DataError(
            f"{path}:{number}: class {str(label)!r} is not a class of {where} (its @classLabel: "
            f"{classes}); every test class must be one of the training split's"
        )
    targets = np.array([index[label] for label in labels], np.int32)
    return SequenceDataset(
        series, targets, num_classes=len(classes), class_names=tuple(classes), name=name
    )
