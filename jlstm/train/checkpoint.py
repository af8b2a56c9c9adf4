"""Checkpoints with orbax: the train state every N steps and at the end, last K kept.

Orbax writes each checkpoint into a temporary directory and renames it to the
step number only once every file is on disk; a run killed mid-save leaves a
``*.orbax-checkpoint-tmp-*`` directory that is never listed as a step, never
restored. As a second guard, a step directory counts only if orbax marked it
committed (``commit_success.txt``, or a commit time in ``_CHECKPOINT_METADATA``),
which it does just before the rename.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp

COMMIT_FILE = "commit_success.txt"
METADATA_FILE = "_CHECKPOINT_METADATA"


def is_committed(path: Path) -> bool:
    """Whether orbax finished the checkpoint in ``path``."""
    if (path / COMMIT_FILE).is_file():
        return True
    try:
        return bool(json.loads((path / METADATA_FILE).read_text()).get("commit_timestamp_nsecs"))
    except (OSError, ValueError, AttributeError):
        return False


class Checkpointer:
    """Save and restore :class:`~jlstm.train.steps.TrainState` under ``directory``.

    Saves are synchronous: when :meth:`save` returns, the checkpoint is complete.
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
            item_handlers={"state": ocp.StandardCheckpointHandler()},
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
        """Write ``state`` as checkpoint ``step`` (atomically); return its directory."""
        self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
        self._manager.wait_until_finished()
        return self.path(step)

    def restore(self, template=None, step: int | None = None):
        """Read checkpoint ``step`` (default: the latest).

        With a ``template`` (a state like the one saved) the result has its
        structure, dtypes and shardings; without one, nested dicts of arrays on
        this process's first device, whatever devices saved them (enough to
        inspect a run: ``restore()["params"]``).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        if template is not None:
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        else:
            here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            abstract = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                self._manager.item_metadata(step)["state"],
            )
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return restored.state

    def close(self) -> None:
        self._manager.close()
