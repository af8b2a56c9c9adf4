"""load_dataset dispatches by name."""

import numpy as np
import pytest

from jlstm.data import AddingTask, CopyTask, known_names, load_dataset


def test_ucr_names_and_paths(tmp_path):
    ds = load_dataset("japanese_vowels", split="train")
    assert len(ds) == 270 and ds.name == "JapaneseVowels/train"
    assert len(load_dataset("JapaneseVowels", split="test")) == 370
    path = tmp_path / "tiny.ts"
    path.write_text("@classLabel true a b\n@data\n1,2:b\n")
    assert load_dataset(str(path)).targets.tolist() == [1]


def test_other_names(tmp_path):
    assert load_dataset("pydoc").startswith(load_dataset("PYDOC")[:100])
    path = tmp_path / "t.txt"
    path.write_text("hello")
    assert load_dataset("text", path=path) == "hello"
    adding = load_dataset("adding", length=12, seed=1)
    assert isinstance(adding, AddingTask) and adding.train_batch(0, 2)["xs"].shape == (2, 12, 2)
    copy = load_dataset("copy", gap=4)
    assert isinstance(copy, CopyTask) and copy.test_set(2)["xs"].shape == (2, 25)


def test_optional_loaders_dispatch():
    pytest.importorskip("statsmodels")
    assert np.asarray(load_dataset("sunspots")).shape == (309,)


def test_unknown_name_lists_known_names():
    names = known_names()
    for name in ("japanese_vowels", "mnist1d", "sunspots", "shakespeare", "text", "pydoc"):
        assert name in names
    with pytest.raises(
        ValueError, match="name must be one of japanese_vowels, mnist1d, .*got 'nope'"
    ):
        load_dataset("nope")
    with pytest.raises(ValueError, match="name must be a str; got int 3"):
        load_dataset(3)
