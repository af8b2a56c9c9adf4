"""``train_and_evaluate``: the training loop, from a config to a trained, checkpointed model."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jlstm.cell import num_params
from jlstm.data import DataError
from jlstm.train import sharding
from jlstm.train.checkpoint import Checkpointer, StructureMismatch, problem
from jlstm.train.config_check import check_config
from jlstm.train.errors import ConfigError, DiskFullError, NonFiniteError, ResumeError
from jlstm.train.logging import NEWTON, MetricsWriter, Progress, read_metrics
from jlstm.train.optim import make_optimizer, make_schedule
from jlstm.train.plots import plot_curves
from jlstm.train.steps import init_train_state, make_eval_step, make_train_step
from jlstm.train.summary import format_summary
from jlstm.train.tasks import Task, make_task
from jlstm.train.workdir import WorkdirLock, disk_full_error, is_disk_full, prepare_workdir


def train_and_evaluate(config, workdir: str | Path, *, progress: bool | None = None) -> dict:
    """Train the model ``config`` describes, evaluating and checkpointing as it goes.

    Files in ``workdir``: ``config.json``, ``metrics.jsonl`` (one JSON record per
    log or eval step), ``checkpoints/<step>/`` (the last
    ``config.train.keep_checkpoints``), and at the end ``curves.png``,
    ``summary.txt`` and ``summary.json``. When ``workdir`` already holds a
    checkpoint the run resumes from the latest intact one (step, parameters,
    optimizer state, RNG, carried state; the data position is the step) and
    ends where an uninterrupted run would have. Damaged checkpoints (see
    :mod:`jlstm.train.checkpoint`) are skipped with one line each and moved to
    ``checkpoints.damaged/``. A workdir that already ran this config to the end
    runs nothing: its saved summary comes back.

    One run at a time per workdir: a second one stops at once (a lock,
    :mod:`jlstm.train.workdir`).

    ``progress``: show a tqdm bar (default: when stderr is a terminal).

    Returns the summary (also ``summary.json``). Raises
    :class:`~jlstm.train.errors.ConfigError` before any work for a bad config,
    data that cannot be used, a workdir that is a file or in use, and (its
    subclass :class:`~jlstm.train.errors.ResumeError`) a config that does not
    fit the checkpoint it would resume; nothing in the workdir is changed then.
    Raises :class:`NonFiniteError` when the loss or the gradient norm is not
    finite (no checkpoint is written after that; the last one stays), and
    :class:`DiskFullError` when the disk fills up.
    """
    started = time.perf_counter()
    check_config(config)
    workdir = Path(workdir)
    with contextlib.ExitStack() as held:
        existed = workdir.exists() or workdir.is_symlink()
        if existed:
            _hold(workdir, held)
            done = _completed_summary(config, workdir)
            if done is not None:
                return _already_done(done, workdir, started)
        mesh = sharding.make_mesh()
        sharding.check_batch_size(config.data.batch_size, mesh)
        sharding.check_batch_size(config.data.eval_batch_size, mesh, "config.data.eval_batch_size")
        init_key, step_root = jax.random.split(jax.random.key(config.seed))
        try:
            task = make_task(config, init_key)  # may raise ConfigError about the data
        except DataError as e:
            raise ConfigError(f"config.data: {e}") from e
        if not existed:  # created only now: a config error leaves nothing behind
            _hold(workdir, held)
        with _disk_full_is_one_line(workdir, "writing to it"):
            return _run(config, workdir, task, mesh, step_root, started, progress)


def _hold(workdir: Path, held: contextlib.ExitStack) -> None:
    """Create ``workdir`` if need be and lock it (on the lead process) while ``held`` lasts."""
    prepare_workdir(workdir)
    if jax.process_index() == 0:
        held.enter_context(WorkdirLock(workdir))


def _already_done(summary: dict, workdir: Path, started: float) -> dict:
    """The saved summary of a finished workdir, as this call's (no steps run)."""
    if jax.process_index() == 0:
        print(
            f"{workdir} is complete: its checkpoint is at step {summary['steps']} = "
            f"config.train.num_steps and the config is the one it ran with; nothing to run, "
            f"the saved summary follows",
            flush=True,
        )
    wall = time.perf_counter() - started
    return {**summary, "resumed_from": summary["steps"], "wall_s": wall, "steps_per_sec": None}


def _run(config, workdir: Path, task: Task, mesh, step_root, started: float, progress) -> dict:
    """The run itself, once the workdir is held and the task built."""
    lead = jax.process_index() == 0  # the process that writes logs, plots and summaries
    optimizer = make_optimizer(config.optim)
    graphdef, state = init_train_state(task.model, optimizer, step_root, task.init_carry)
    state = sharding.put_state(state, mesh, task.carry_spec)

    checkpoints = Checkpointer(workdir / "checkpoints", max_to_keep=config.train.keep_checkpoints)
    start, state = _resume(config, workdir, checkpoints, state)
    writer = MetricsWriter(workdir / "metrics.jsonl", tensorboard=lead and config.train.tensorboard)
    if lead:
        writer.truncate_after(start)
        _save_config(config, workdir, resuming=start > 0)

    train_step = make_train_step(
        graphdef, task.loss_fn, optimizer, mesh=mesh, carry_spec=task.carry_spec
    )
    eval_step = make_eval_step(graphdef, task.eval_fn)
    schedule = make_schedule(config.optim)
    num_steps = config.train.num_steps
    bar = Progress(start, num_steps, enabled=progress if lead else False)
    if start and lead:
        bar.write(f"resuming {workdir} from step {start}")

    lockstep = sharding.needs_lockstep(mesh)
    timing = _Timing()
    # implementation="parallel": Newton's iterations join the records (nothing otherwise).
    newton = NEWTON.drain if config.model.implementation == "parallel" else dict
    newton()  # nothing of an earlier run in this process
    final = None  # the evaluation at the last step
    pending = []  # the train metrics since the last log, still on the device
    try:
        for step in range(start, num_steps):
            batch = sharding.put_batch(task.train_batch(step), mesh)
            state, metrics = train_step(state, batch)
            if lockstep:
                jax.block_until_ready(metrics)
            pending.append(metrics)
            done = step + 1
            bar.update(1)
            last = done == num_steps
            if done % config.train.log_every == 0 or last:
                values = _mean(sharding.to_host(pending))
                values["learning_rate"] = float(schedule(step))
                values["steps_per_sec"] = timing.lap(len(pending))
                values.update(newton())
                pending = []
                if lead:
                    bar.show(
                        done, writer.write(done, "train", values), keys=("loss", "steps_per_sec")
                    )
                _check_finite(state, checkpoints)
            if done % config.train.eval_every == 0 or last:
                with timing.paused():
                    values = evaluate(eval_step, state, task, mesh)
                    values.update(newton())
                if lead:
                    bar.show(done, writer.write(done, "eval", values), keys=tuple(values))
                final = values if last else None
            if done % config.train.checkpoint_every == 0 or last:
                _check_finite(state, checkpoints)
                doing = functools.partial(_saving, checkpoints, done)
                with timing.paused(), _disk_full_is_one_line(workdir, doing):
                    checkpoints.save(done, state)
    finally:
        bar.close()
        writer.close()

    if final is None:  # nothing left to train: the checkpoint was already at the end
        final = evaluate(eval_step, state, task, mesh)
    if task.test_batches is not None:  # the held-out test set, once, at the end
        test = evaluate(eval_step, state, task, mesh, batches=task.test_batches)
        final = {**final, **{f"test_{k}": v for k, v in test.items()}}
    summary = {
        "workdir": str(workdir),
        "data": task.description,
        "steps": num_steps,
        "resumed_from": start,
        "final": task.finish(final),
        "headline": task.headline,
        "baselines": task.baselines,
        "num_params": num_params(state.params),
        "devices": mesh.size,
        "wall_s": time.perf_counter() - started,
        "steps_per_sec": timing.rate(),
        "files": {
            "metrics": str(writer.path),
            "curves": str(workdir / "curves.png"),
            "checkpoints": str(workdir / "checkpoints" / str(checkpoints.latest_step())),
            "summary": str(workdir / "summary.txt"),
        },
    }
    checkpoints.close()
    if lead:
        if task.report is not None:
            model = nnx.merge(graphdef, *sharding.to_host((state.params, state.model_state)))
            extra = dict(task.report(model, workdir))
            summary["files"].update(extra.pop("files", {}))
            summary.update(extra)
        _write_results(summary, task, writer)
    return summary


def _resume(config, workdir: Path, checkpoints: Checkpointer, state) -> tuple[int, object]:
    """The step to start from and the state there: the newest intact checkpoint, once
    the config is known to fit it. Skipped checkpoints are set aside, one line each.

    Raises :class:`ResumeError`, with nothing in the workdir changed, when the
    checkpoint holds a state of another structure (the fields that changed are
    named) or is past ``config.train.num_steps``.
    """
    lead = jax.process_index() == 0
    afresh = f"to start afresh, pass a new --workdir or delete {workdir}"
    try:
        resumed = checkpoints.resume(state)
    except StructureMismatch as e:
        changes = _config_changes(config, workdir)
        if changes:
            changed = "; ".join(changes)
        elif (workdir / "config.json").is_file():
            changed = "nothing, by config.json (was it edited?)"
        else:
            changed = "unknown (no config.json)"
        raise ResumeError(
            f"the config does not fit the checkpoint it would resume ({e.path}): "
            f"{'; '.join(e.differences)}. Changed since that run: {changed}. "
            f"The model and the optimizer must stay as they were to resume; {afresh}"
        ) from None
    start = resumed.step or 0
    if start > config.train.num_steps:
        raise ResumeError(
            f"config.train.num_steps must be >= {start}, the step of the checkpoint it would "
            f"resume ({checkpoints.path(start)}); got {config.train.num_steps}. A run cannot go "
            f"back: raise num_steps, or {afresh}"
        )
    for skipped in resumed.skipped:
        moved = checkpoints.set_aside(skipped.step)
        if lead:
            instead = f"step {start}" if resumed.step is not None else "step 0 (none is intact)"
            print(
                f"skipped checkpoint {checkpoints.path(skipped.step)}: {skipped.reason}; "
                f"moved to {moved}; resuming from {instead}",
                flush=True,
            )
    return start, resumed.state


def _completed_summary(config, workdir: Path) -> dict | None:
    """The saved summary of ``workdir`` when it ran exactly ``config`` to its last
    step (the checkpoint there intact, none past it); else None."""
    try:
        saved_config = json.loads((workdir / "config.json").read_text())
        summary = json.loads((workdir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    num_steps = config.train.num_steps
    if saved_config != json.loads(config.to_json()) or summary.get("steps") != num_steps:
        return None
    directory = workdir / "checkpoints"
    try:
        steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    except OSError:
        return None
    if not steps or steps[-1] != num_steps or problem(directory / str(num_steps)) is not None:
        return None
    return summary


@contextlib.contextmanager
def _disk_full_is_one_line(workdir: Path, doing):
    """Turn "no space left on device", however deep it was raised, into one
    :class:`DiskFullError` line naming the workdir, its free space and ``doing``
    (a string, or a function that makes one)."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(workdir, doing() if callable(doing) else doing) from None
        raise


def _saving(checkpoints: Checkpointer, step: int) -> str:
    """What a save that failed was doing, and which checkpoints are left."""
    kept = [s for s in checkpoints.all_steps() if s != step]
    left = (
        f"the checkpoints of steps {', '.join(map(str, kept))} are intact"
        if kept
        else "no earlier checkpoint"
    )
    return f"saving checkpoint {step} ({left})"


def _write_results(summary: dict, task: Task, writer: MetricsWriter) -> None:
    """The PNG of the curves, ``summary.json`` and ``summary.txt``."""
    workdir = Path(summary["workdir"])
    plot_curves(
        read_metrics(writer.path),
        summary["files"]["curves"],
        title=f"{workdir}: {task.description}",
        baselines=task.baselines,
    )
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (workdir / "summary.txt").write_text(format_summary(summary) + "\n")


def evaluate(eval_step, state, task: Task, mesh, *, batches=None) -> dict[str, float]:
    """Every metric of ``task.eval_fn`` over the whole evaluation set (or over
    ``batches()``, e.g. ``task.test_batches``)."""
    carry = task.eval_carry
    if carry is not None:
        spec = task.eval_carry_spec if task.eval_carry_spec is not None else task.carry_spec
        carry = sharding.put_tree(carry, mesh, spec)
    lockstep = sharding.needs_lockstep(mesh)
    parts = []
    for batch in (batches or task.eval_batches)():
        metrics, carry = eval_step(state, sharding.put_batch(batch, mesh), carry)
        if lockstep:
            jax.block_until_ready(metrics)
        parts.append(metrics)
    parts = sharding.to_host(parts)
    totals = {}
    for name in parts[0]:
        means = np.array([float(p[name][0]) for p in parts])
        counts = np.array([float(p[name][1]) for p in parts])
        totals[name] = float((means * counts).sum() / max(counts.sum(), 1.0))
    return totals


def _mean(records: list[dict]) -> dict[str, float]:
    """Average each metric over the steps since the last log."""
    return {k: float(np.mean([r[k] for r in records])) for k in records[0]}


def _check_finite(state, checkpoints: Checkpointer) -> None:
    """Stop with a clear message when a step's loss or gradient norm was not finite."""
    bad = int(sharding.to_host(state.bad_step))
    if bad < 0:
        return
    last = checkpoints.latest_step()
    where = (
        f"the last good checkpoint is {checkpoints.path(last)} (step {last}), left as it was"
        if last is not None
        else f"no checkpoint had been written yet ({checkpoints.directory} is empty)"
    )
    raise NonFiniteError(
        f"training stopped: the loss or the gradient norm was not finite at step {bad + 1} "
        f"(the update of that step was skipped); {where}. Look for a NaN or inf in the "
        f"data near that step, or lower config.optim.learning_rate."
    )


def _save_config(config, workdir: Path, *, resuming: bool) -> None:
    """Write ``config.json``; when resuming, say which fields changed."""
    changes = _config_changes(config, workdir) if resuming else []
    if changes:
        print("note: the config differs from the run being resumed: " + "; ".join(changes))
    path = workdir / "config.json"
    path.write_text(json.dumps(json.loads(config.to_json()), indent=2, sort_keys=True) + "\n")


def _config_changes(config, workdir: Path) -> list[str]:
    """``"key: old -> new"`` for each field that differs from ``workdir/config.json``."""
    path = workdir / "config.json"
    try:
        old = _flat(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []
    new = _flat(json.loads(config.to_json()))
    show = lambda d, k: repr(d[k]) if k in d else "(absent)"
    return [
        f"{k}: {show(old, k)} -> {show(new, k)}"
        for k in sorted(old.keys() | new.keys())
        if (k in old, old.get(k)) != (k in new, new.get(k))
    ]


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class _Timing:
    """Steps per second of the training steps alone (evaluation and saving left out)."""

    def __init__(self):
        self._mark = time.perf_counter()
        self._paused = 0.0
        self._rates = []  # (steps, seconds) of each logged interval

    def lap(self, steps: int) -> float:
        """Close an interval of ``steps`` steps; return its steps/s."""
        now = time.perf_counter()
        seconds = max(now - self._mark - self._paused, 1e-9)
        self._mark, self._paused = now, 0.0
        self._rates.append((steps, seconds))
        return steps / seconds

    @contextlib.contextmanager
    def paused(self):
        """Leave the time spent inside out of the rate."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t

    def rate(self) -> float | None:
        """Steps/s over the intervals after the first (which includes compiling)."""
        later = self._rates[1:] or self._rates
        if not later:
            return None
        return sum(n for n, _ in later) / sum(t for _, t in later)
