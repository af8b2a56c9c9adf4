"""``load_dataset(name, **kwargs)``: one entry point for configs, dispatching by name.

``kwargs`` go to the loader; what comes back depends on the name:

- ``"japanese_vowels"``, any UCR/UEA name available offline, or a path to a
  ``.ts`` file or dataset folder: ``load_ucr(name, split=...)`` -> a SequenceDataset
- ``"mnist1d"``: ``load_mnist1d(seed=42)`` -> (train, test) SequenceDatasets
- ``"sunspots"``: ``load_sunspots()`` -> the (309,) float64 series
- ``"shakespeare"``: ``load_shakespeare()`` -> str
- ``"text"``: ``load_text(path)`` -> str
- ``"pydoc"``: ``pydoc_corpus()`` -> str
- ``"adding"``: ``AddingTask(length, seed=0)`` -> a task with ``train_batch(step,
  batch_size)`` and ``test_set(n)``
- ``"copy"``: ``CopyTask(gap, num_symbols=10, alphabet=8, seed=0)`` -> the same
"""

from __future__ import annotations

from jlstm.data import mnist1d, synthetic, text, timeseries, ucr

LOADERS = {
    "mnist1d": mnist1d.load_mnist1d,
    "sunspots": timeseries.load_sunspots,
    "shakespeare": text.load_shakespeare,
    "text": text.load_text,
    "pydoc": text.pydoc_corpus,
    "adding": synthetic.AddingTask,
    "copy": synthetic.CopyTask,
}


def load_dataset(name: str, **kwargs):
    """Loads the dataset called ``name`` (see the table above); ``kwargs`` go to its loader.

    >>> load_dataset("japanese_vowels", split="test").name
    'JapaneseVowels/test'
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a str; got {type(name).__name__} {name!r}")
    loader = LOADERS.get(name.lower())
    if loader is not None:
        return loader(**kwargs)
    if ucr.is_path(name) or ucr.find_ucr(name) is not None:
        return ucr.load_ucr(name, **kwargs)
    raise ValueError(
        f"name must be one of {', '.join(known_names())} or a path to a .ts file; got {name!r}"
    )


def known_names() -> list[str]:
    """Names :func:`load_dataset` accepts (besides paths), UCR ones included."""
    return ["japanese_vowels", *LOADERS, *ucr.list_ucr_datasets()]
