"""Train a jlstm model from a config file.

    python train.py --config configs/NAME.py --workdir runs/NAME [--config.section.field=value ...]

With no arguments it runs ``configs/default.py`` into ``runs/default``. A config
file may take a variant after a colon (``configs/adding.py:smoke``). Rerunning
with the same ``--workdir`` resumes from its latest checkpoint.

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

import re
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

HERE = Path(__file__).resolve().parent

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    str(HERE / "configs" / "default.py"),
    "Config file (optionally FILE:variant).",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<config name>).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (several hosts)."
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def default_workdir(config_arg: str) -> str:
    """``runs/<config file stem>``, plus ``_<variant>`` for ``FILE:variant``."""
    path, _, variant = config_arg.partition(":")
    name = Path(path).stem
    return str(Path("runs") / (f"{name}_{variant}" if variant else name))


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with an unknown ``--config.KEY`` override reported as a
    config error (naming the key) instead of a traceback."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as e:
        text = str(e)
        overrides = [a.split("=")[0].lstrip("-") for a in argv[1:] if a.startswith("--config.")]
        bad = [o for o in overrides if o.rsplit(".", 1)[-1] in text] or overrides
        close = re.search(r'Did you mean "([^"]+)"', text)
        hint = f"; did you mean {close.group(1)!r}?" if close else ""
        print(f"config error: {', '.join(bad)} is not a field of the config{hint}", file=sys.stderr)
        sys.exit(2)
    except flags.Error as e:
        print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import jax

    if _DISTRIBUTED.value:
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
    from absl import logging

    logging.set_verbosity(logging.ERROR)  # orbax is chatty at INFO/WARNING
    from jlstm.train import ConfigError, NonFiniteError, train_and_evaluate
    from jlstm.train.summary import format_summary

    workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].config_filename)
    try:
        summary = train_and_evaluate(_CONFIG.value, workdir)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(str(e), file=sys.stderr)
        return 1
    if jax.process_index() == 0:
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
