"""Data that cannot be used raises a DataError naming the file, what was expected
and what arrived (never a bare decode error or a traceback from deep inside)."""

import pytest

from jlstm.data import DataError, load_text, load_ts, split_text


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", r"empty.txt holds 0 characters; a corpus needs at least 2"),
        (b"a", r"empty.txt holds 1 character; a corpus needs at least 2"),
        (b"\x89PNG\r\n\x1a\n", r"empty.txt is not utf-8 text: byte 0x89 at offset 0"),
        (
            b"ab\x00cd",
            r"empty.txt holds binary data \(a NUL byte at offset 2\); expected a text file",
        ),
        ("caf\xe9".encode("latin-1"), r"not utf-8 text: byte 0xe9 at offset 3"),
    ],
)
def test_unusable_text_files(tmp_path, content, match):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_text(path)


def test_text_paths_that_are_not_files(tmp_path):
    with pytest.raises(DataError, match=r"path '.*missing.txt' does not exist; expected a text"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError):  # still a FileNotFoundError for callers who catch it
        load_text(tmp_path / "missing.txt")
    with pytest.raises(DataError, match=r"path '.*' is a directory; expected a text file"):
        load_text(tmp_path)


def test_other_encodings_still_load(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9\r\nbar".encode("latin-1"))
    assert load_text(path, encoding="latin-1") == "caf\xe9\nbar"  # universal newlines as before


def test_a_text_too_short_to_split_is_a_data_error():
    with pytest.raises(DataError, match=r"ids \(1 tokens\) is too short to split"):
        split_text([3], 0.1)


@pytest.mark.parametrize(
    "data, match",
    [
        (
            "1,2:3,4:a\n1,2:3,4\n",
            r"t.ts:4: the label is missing: expected 2 channels and the label",
        ),
        ("1,2:3,4:a\n1,2:3,4:\n", r"t.ts:4: the label is missing \(nothing after the last ':'\)"),
        ("1,2\n", r"t.ts:3: the label is missing: expected channels, then ':' and the label"),
        ("1,2:3,4\n", r"t.ts:3: the label '3,4' is not among @classLabel \['a', 'b'\]"),
    ],
)
def test_ts_lines_without_a_label(tmp_path, data, match):
    path = tmp_path / "t.ts"
    path.write_text("@classLabel true a b\n@data\n" + data)
    with pytest.raises(DataError, match=match):
        load_ts(path)


def test_ts_paths_that_are_not_text(tmp_path):
    path = tmp_path / "bin.ts"
    path.write_bytes(b"\x89PNG\x00\x00")
    with pytest.raises(DataError, match=r"bin.ts is not utf-8 text"):
        load_ts(path)
    with pytest.raises(DataError, match=r"path '.*missing.ts' does not exist; expected a .ts"):
        load_ts(tmp_path / "missing.ts")
