"""One run per workdir: a lock held for the whole run, and the checks before it.

The lock is ``fcntl.flock`` on ``<workdir>/.lock``, with the holder's PID
written in the file. The kernel drops a flock when its process ends, however it
ends (SIGKILL too), so a lock left by a dead run is simply taken over: there is
no stale lock to clean up by hand. On NFS, Linux maps flock onto NFS locks.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

from jlstm.train.errors import DiskFullError, WorkdirError

LOCK_FILE = ".lock"


def prepare_workdir(workdir: Path) -> None:
    """Create ``workdir`` (and its parents) or raise :class:`WorkdirError` saying why not."""
    for path in (workdir, *workdir.parents):
        if path.exists():
            if path.is_dir():
                break
            if path == workdir:
                raise WorkdirError(
                    f"workdir {workdir} is a file; expected a directory (pass another --workdir)"
                )
            raise WorkdirError(
                f"workdir {workdir} cannot be created: {path} is a file, not a directory"
            )
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"workdir {workdir} cannot be created: {e.strerror}") from None


class WorkdirLock:
    """Hold ``<workdir>/.lock`` while a run uses ``workdir``; a context manager.

    Entering raises :class:`WorkdirError` at once, naming the holder's PID, when
    another process holds it.
    """

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> WorkdirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkdirError(
                f"workdir {self.workdir} is in use by another run (PID {holder}, holding "
                f"{self.path}); wait for it to finish, or pass another --workdir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # a PID left in the file means that run was killed
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is "no space left on device"
    (an OSError with ENOSPC or EDQUOT, or a wrapped one whose text says so)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_error(workdir: Path, doing: str) -> DiskFullError:
    """The one-line error for a full disk: the workdir, what was being written, the space."""
    try:
        usage = shutil.disk_usage(workdir)
        space = f"{_size(usage.free)} free of {_size(usage.total)}"
    except OSError:
        space = "free space unknown"
    return DiskFullError(
        f"no space left on the device of workdir {workdir} ({space}) while {doing}; "
        f"free some space and run the same command again to resume from the last checkpoint"
    )


def _size(n: float) -> str:
    """A byte count for people: ``512 bytes``, ``3.4 MiB``."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    while n >= 1024 and len(units) > 1:
        n, units = n / 1024, units[1:]
    return f"{n:.0f} bytes" if units[0] == "bytes" else f"{n:.1f} {units[0]}"
