"""Checkpoints with orbax: the train state every N steps and at the end, last K kept.

Orbax writes each checkpoint into a temporary directory and renames it to the
step number only once every file is on disk; a run killed mid-save leaves a
``*.orbax-checkpoint-tmp-*`` directory that is never listed as a step, never
restored. As a second guard, a step directory counts only if orbax marked it
committed (``commit_success.txt``, or a commit time in ``_CHECKPOINT_METADATA``),
which it does just before the rename.

After each save, ``checksums.json`` in the step directory records the SHA-256 of
every file orbax wrote, and a restore first checks them: a flipped byte, a
truncated or zeroed file, a deleted directory is found before any of it is
read. (A checkpoint without the file, written before jlstm kept checksums or by
a run killed between the rename and the checksums, is restored unchecked.)

:meth:`Checkpointer.resume` restores the newest checkpoint that is intact and
reports the newer ones it skipped; :meth:`Checkpointer.set_aside` moves those
into ``<directory>.damaged/`` so that the steps can be saved again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jlstm.train.errors import CheckpointError

COMMIT_FILE = "commit_success.txt"
METADATA_FILE = "_CHECKPOINT_METADATA"
CHECKSUM_FILE = "checksums.json"
ITEM = "state"  # the one item of each checkpoint, a subdirectory


def is_committed(path: Path) -> bool:
    """Whether orbax finished the checkpoint in ``path``."""
    if (path / COMMIT_FILE).is_file():
        return True
    try:
        return bool(json.loads((path / METADATA_FILE).read_text()).get("commit_timestamp_nsecs"))
    except (OSError, ValueError, AttributeError):
        return False


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(path: Path) -> list[Path]:
    """Every file under ``path`` but the checksum file, sorted."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE)


def write_checksums(path: Path) -> None:
    """Record the SHA-256 of every file of the checkpoint in ``path`` (atomically)."""
    sums = {p.relative_to(path).as_posix(): _sha256(p) for p in _files(path)}
    tmp = path / f"{CHECKSUM_FILE}.tmp"
    tmp.write_text(json.dumps({"sha256": sums}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path / CHECKSUM_FILE)


def problem(path: Path) -> str | None:
    """Why the checkpoint in ``path`` cannot be restored, as far as its files tell; None
    when they look intact (every recorded checksum matches)."""
    if not path.is_dir():
        return "its directory is gone"
    if not is_committed(path):
        return f"orbax never marked it complete (no {COMMIT_FILE}, no commit time)"
    if not (path / ITEM).is_dir():
        return f"its {ITEM}/ directory is missing"
    sums = path / CHECKSUM_FILE
    if not sums.exists():
        return None  # older than checksums, or killed before writing them: unchecked
    try:
        recorded = json.loads(sums.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {CHECKSUM_FILE} is unreadable"
    for name, digest in recorded.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if _sha256(file) != digest:
            return f"{name} does not match its checksum (the file changed after the save)"
    return None


def _first_line(error: BaseException) -> str:
    """An exception as one short line: its type and its first non-empty line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _key_name(key) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _shapes(tree) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{"params/encoder/.../w_h/value": (shape, dtype)}`` for every array of ``tree``
    (a state, or orbax's metadata of one: both flatten to the same names)."""
    return {
        "/".join(_key_name(k) for k in path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def structure_differences(saved, template, *, limit: int = 3) -> list[str]:
    """How the arrays of ``template`` differ from those of ``saved`` (names, shapes,
    dtypes); empty when one can be restored into the other. At most ``limit`` lines,
    then a count of the rest."""
    old, new = _shapes(saved), _shapes(template)
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            out.append(f"{name} is in the checkpoint but not in this config's state")
        elif name not in old:
            out.append(f"{name} is in this config's state but not in the checkpoint")
        elif old[name] != new[name]:
            (a, da), (b, db) = old[name], new[name]
            out.append(f"{name} is {a} {da} in the checkpoint, {b} {db} now")
    if len(out) > limit:
        out = [*out[:limit], f"and {len(out) - limit} more"]
    return out


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A checkpoint that :meth:`Checkpointer.resume` passed over, and why."""

    step: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Resumed:
    """What :meth:`Checkpointer.resume` found: the step restored (None: none was
    intact), the state (the template when none), and the newer checkpoints skipped."""

    step: int | None
    state: object
    skipped: tuple[Skipped, ...]


class DamagedCheckpoint(CheckpointError):
    """A checkpoint whose files are incomplete, changed or unreadable."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"checkpoint {path} is damaged: {reason}")


class StructureMismatch(CheckpointError):
    """The newest intact checkpoint holds a state of another structure than the template."""

    def __init__(self, path: Path, differences: list[str]):
        self.path, self.differences = path, differences
        super().__init__(f"checkpoint {path} does not fit: " + "; ".join(differences))


class Checkpointer:
    """Save and restore :class:`~jlstm.train.steps.TrainState` under ``directory``.

    Saves are synchronous: when :meth:`save` returns, the checkpoint is complete
    and its checksums are written.
    """

    def __init__(self, directory: str | Path, *, max_to_keep: int):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={ITEM: ocp.StandardCheckpointHandler()},
        )

    def step_dirs(self) -> list[int]:
        """Steps of every step directory, complete or not, oldest first."""
        return sorted(
            int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and p.is_dir()
        )

    def all_steps(self) -> list[int]:
        """Steps of every complete checkpoint kept, oldest first."""
        steps = self._manager.all_steps()
        return sorted(s for s in steps if is_committed(self.path(s)))

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> Path:
        """The directory of one checkpoint."""
        return self.directory / str(step)

    def save(self, step: int, state) -> Path:
        """Write ``state`` as checkpoint ``step`` (atomically); return its directory.

        Raises :class:`CheckpointError` when orbax skips the save (a directory of
        that step is already there), rather than carry on without it.
        """
        saved = self._manager.save(
            step, args=ocp.args.Composite(**{ITEM: ocp.args.StandardSave(state)})
        )
        self._manager.wait_until_finished()
        if not saved:
            raise CheckpointError(
                f"checkpoint {self.path(step)} was not saved: orbax skips a step at or below "
                f"its latest ({self._manager.latest_step()})"
            )
        if jax.process_index() == 0:
            write_checksums(self.path(step))
        return self.path(step)

    def metadata(self, step: int):
        """The shapes and dtypes of checkpoint ``step``'s arrays (orbax's metadata tree)."""
        try:
            return self._manager.item_metadata(step)[ITEM]
        except Exception as e:  # orbax and tensorstore raise many kinds
            raise DamagedCheckpoint(self.path(step), f"it cannot be read ({_first_line(e)})") from e

    def restore(self, template=None, step: int | None = None):
        """Read checkpoint ``step`` (default: the latest), after checking its checksums.

        With a ``template`` (a state like the one saved) the result has its
        structure, dtypes and shardings; without one, nested dicts of arrays on
        this process's first device, whatever devices saved them (enough to
        inspect a run: ``restore()["params"]``). Raises :class:`CheckpointError`
        naming the file when the checkpoint is damaged.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        reason = problem(self.path(step))
        if reason is not None:
            raise DamagedCheckpoint(self.path(step), reason)
        if template is None:
            here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            template = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                self.metadata(step),
            )
        return self._read(step, template)

    def _read(self, step: int, template):
        """Restore checkpoint ``step`` into ``template``'s structure (no checksum check)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{ITEM: ocp.args.StandardRestore(abstract)})
            )
        except Exception as e:  # orbax and tensorstore raise many kinds
            raise DamagedCheckpoint(self.path(step), f"it cannot be read ({_first_line(e)})") from e
        return restored[ITEM]

    def resume(self, template) -> Resumed:
        """Restore the newest intact checkpoint into ``template``'s structure.

        Checkpoints that are incomplete or damaged (checksums, unreadable files)
        are skipped, newest first, and listed in the result; nothing is moved
        (:meth:`set_aside` does that). Raises :class:`StructureMismatch` when the
        newest intact checkpoint holds arrays of other names, shapes or dtypes
        than ``template``: a different model, not a damaged file.
        """
        skipped = []
        for step in reversed(self.step_dirs()):
            try:
                reason = problem(self.path(step))
                if reason is not None:
                    raise DamagedCheckpoint(self.path(step), reason)
                differences = structure_differences(self.metadata(step), template)
                if differences:
                    raise StructureMismatch(self.path(step), differences)
                return Resumed(step, self._read(step, template), tuple(skipped))
            except DamagedCheckpoint as e:
                skipped.append(Skipped(step, e.reason))
        return Resumed(None, template, tuple(skipped))

    @property
    def damaged_directory(self) -> Path:
        """Where :meth:`set_aside` moves checkpoints: ``<directory>.damaged``."""
        return self.directory.with_name(self.directory.name + ".damaged")

    def set_aside(self, step: int) -> Path:
        """Move checkpoint ``step`` out of the way (into :attr:`damaged_directory`,
        replacing an older one of that step there), so that the step can be saved
        again; return where it went."""
        target = self.damaged_directory / str(step)
        if jax.process_index() == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.replace(self.path(step), target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jlstm set aside checkpoint {step}")
        self._manager.reload()
        return target

    def close(self) -> None:
        self._manager.close()
