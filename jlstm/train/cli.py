"""``jlstm-train`` (also ``python train.py``): train a jlstm model from a config file.

    jlstm-train --config configs/NAME.py --workdir runs/NAME [--config.section.field=value ...]

With no arguments it runs ``configs/default.py`` into ``runs/default``. A config
file may take a variant after a colon (``configs/adding.py:smoke``). Rerunning
with the same ``--workdir`` resumes from its latest checkpoint.

Where the config comes from: ``--config FILE`` is read relative to the current
directory; when no such file exists and FILE names a config shipped with jlstm
(``configs/NAME.py``, ``NAME.py`` or ``NAME``), the installed copy is used
(the package ``jlstm.configs``), so ``jlstm-train --config configs/adding.py``
works without the repository too.

Several devices: each batch is split over all of them (data parallel); on a
CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` makes four (for
testing: they share the cores, and each step is awaited before the next).
Several hosts: start the same command on every host with ``--distributed``
(``jax.distributed.initialize()``; on Slurm, Open MPI or TPU pods it finds its
peers itself, elsewhere add ``--coordinator_address=HOST0:PORT
--num_processes=N --process_id=I``, or set JAX_COORDINATOR_ADDRESS), with a
``--workdir`` on a file system every host shares.
"""

from __future__ import annotations

import importlib.resources
import re
import sys
from pathlib import Path

from absl import app, flags

DEFAULT_CONFIG = "configs/default.py"
_CONFIG_ARG = re.compile(r"^--?config(=|$)")  # --config=FILE, --config FILE (not --config.x)


def shipped_configs() -> dict[str, Path]:
    """The configs installed with jlstm (the package ``jlstm.configs``), by name."""
    folder = Path(str(importlib.resources.files("jlstm.configs")))
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


def resolve_config(config_arg: str) -> str:
    """``FILE[:variant]`` with FILE as given when it exists, else the shipped config it
    names (``configs/NAME.py``, ``NAME.py`` or ``NAME``); raise ConfigError otherwise."""
    from jlstm.train.errors import ConfigError

    file, colon, variant = config_arg.partition(":")
    if Path(file).is_file():
        return config_arg
    path, shipped = Path(file), shipped_configs()
    if path.parent in (Path("."), Path("configs")) and path.suffix in ("", ".py"):
        if path.stem in shipped:
            return f"{shipped[path.stem]}{colon}{variant}"
    raise ConfigError(
        f"--config {file} does not exist (relative to {Path.cwd()}); the configs shipped "
        f"with jlstm: {', '.join(shipped)} (as configs/NAME.py)"
    )


def with_config_arg(argv: list[str]) -> list[str]:
    """``argv`` with its ``--config`` value resolved (:func:`resolve_config`), and
    ``--config=configs/default.py`` first when it has none."""
    argv = list(argv)
    for i, arg in enumerate(argv[1:], 1):
        if _CONFIG_ARG.match(arg):
            if "=" in arg:
                argv[i] = "--config=" + resolve_config(arg.split("=", 1)[1])
            elif i + 1 < len(argv):
                argv[i + 1] = resolve_config(argv[i + 1])
            return argv
    return [argv[0], "--config=" + resolve_config(DEFAULT_CONFIG), *argv[1:]]


def default_workdir(config_arg: str) -> str:
    """``runs/<config file stem>``, plus ``_<variant>`` for ``FILE:variant``."""
    path, _, variant = config_arg.partition(":")
    name = Path(path).stem
    return str(Path("runs") / (f"{name}_{variant}" if variant else name))


def _define_flags(argv: list[str]) -> None:
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config",
        DEFAULT_CONFIG,
        "Config file (optionally FILE:variant); configs/NAME.py falls back to the "
        "config of that name shipped with jlstm.",
        lock_config=True,
        sys_argv=argv,  # the overrides are read from here, after the config's path
    )
    flags.DEFINE_string("workdir", None, "Output directory (default: runs/<config name>).")
    flags.DEFINE_bool(
        "distributed", False, "Call jax.distributed.initialize() first (several hosts)."
    )
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0.")
    flags.DEFINE_integer("num_processes", None, "Processes in all.")
    flags.DEFINE_integer("process_id", None, "This process's index.")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with config errors (an unknown ``--config.KEY``, a variant
    the config file does not have) reported in one line instead of a traceback."""
    from jlstm.train.errors import ConfigError

    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as e:
        text = str(e)
        overrides = [a.split("=")[0].lstrip("-") for a in argv[1:] if a.startswith("--config.")]
        named = text.split("Did you mean")[0]  # the key that failed, not the suggestion
        bad = [o for o in overrides if _named_in(o, named)] or overrides
        close = re.search(r'Did you mean "([^"]+)"', text)
        hint = f"; did you mean {close.group(1)!r}?" if close else ""
        _exit_config_error(f"{', '.join(bad)} is not a field of the config{hint}")
    except flags.Error as e:
        root = _root_cause(e)
        if isinstance(root, ConfigError):  # raised by the config file's get_config
            _exit_config_error(f"{_config_value(argv)}: {root}")
        print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(1)


def _named_in(override: str, text: str) -> bool:
    """Whether the error text names one of the override's keys (``optim`` in ``optm.x``)."""
    return any(re.search(rf"\b{re.escape(key)}\b", text) for key in override.split(".")[1:])


def _config_value(argv: list[str]) -> str:
    """The value of ``--config`` in ``argv`` (as :func:`with_config_arg` left it)."""
    for i, arg in enumerate(argv):
        if _CONFIG_ARG.match(arg):
            return arg.split("=", 1)[1] if "=" in arg else argv[i + 1]
    return DEFAULT_CONFIG


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


def _exit_config_error(message: str):
    print(f"config error: {message}", file=sys.stderr)
    sys.exit(2)


def _run(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import jax

    FLAGS = flags.FLAGS
    if FLAGS.distributed:
        jax.distributed.initialize(
            coordinator_address=FLAGS.coordinator_address,
            num_processes=FLAGS.num_processes,
            process_id=FLAGS.process_id,
        )
    from absl import logging

    logging.set_verbosity(logging.ERROR)  # orbax is chatty at INFO/WARNING
    workdir = FLAGS.workdir or default_workdir(FLAGS["config"].config_filename)
    return run_training(FLAGS.config, workdir)


def run_training(config, workdir: str) -> int:
    """Train, print the summary (process 0) and return 0; or print why the run stopped
    on purpose in one line: 2 for a ConfigError (it could not start as configured),
    1 for a RunError (it could not go on: a non-finite loss, a full disk, ...)."""
    import jax

    from jlstm.train import train_and_evaluate
    from jlstm.train.errors import ConfigError, RunError
    from jlstm.train.summary import format_summary

    try:
        summary = train_and_evaluate(config, workdir)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(str(e), file=sys.stderr)
        return 1
    if jax.process_index() == 0:
        print(format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (``sys.argv`` by default), train, print the summary; exits
    with 0, 1 (the loss stopped being finite) or 2 (a config error)."""
    from jlstm.train.errors import ConfigError

    argv = list(sys.argv if argv is None else argv)
    try:
        argv = with_config_arg(argv)
    except ConfigError as e:
        _exit_config_error(str(e))
    _define_flags(argv)
    app.run(_run, argv=argv, flags_parser=parse_flags)


if __name__ == "__main__":
    main()
