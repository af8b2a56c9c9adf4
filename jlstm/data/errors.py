"""The error the data loaders raise for data that cannot be used."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file or data set that cannot be used: missing, empty, not text, or with
    content that does not fit (the message names the file, what was expected and
    what arrived)."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file or folder that does not exist (also a :class:`FileNotFoundError`)."""


def read_text_file(path, *, encoding: str = "utf-8", what: str = "a text file") -> str:
    """The text of the file at ``path`` (universal newlines), or a :class:`DataError`
    saying why it cannot be read: missing, a directory, not ``encoding`` text, binary.

    ``what`` names the expected file in the message (``"a .ts file"``).
    """
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"path {str(path)!r} does not exist; expected {what}")
    if path.is_dir():
        raise DataError(f"path {str(path)!r} is a directory; expected {what}")
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        raw = path.read_bytes()
        try:  # the offset in the file (the error's own counts from the chunk it decoded)
            raw.decode(encoding)
            start = e.start
        except UnicodeDecodeError as whole:
            start = whole.start
        raise DataError(
            f"{path} is not {encoding} text: byte 0x{raw[start]:02x} at offset {start}; "
            f"expected {what} (binary data, or another encoding?)"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        offset = path.read_bytes().find(b"\x00")
        raise DataError(
            f"{path} holds binary data (a NUL byte at offset {offset}); expected {what}"
        )
    return text
