"""Helpers for the training tests: load a config file, run train.py in a subprocess.

(A plain module, not a conftest.py: the tests import it by name, and the name
``conftest`` already belongs to tests/conftest.py.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py") if not p.name.startswith("_"))


def load_config(name: str, variant: str = "smoke"):
    """``configs/<name>.py``'s ``get_config(variant)``."""
    path = REPO / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def run_train_py(*args: str, devices: int = 1, env: dict | None = None) -> subprocess.Popen:
    """Start ``python train.py ARGS`` (not waiting) on ``devices`` forced CPU devices."""
    env = {**os.environ, **(env or {})}
    flags = os.environ.get("XLA_FLAGS", "")  # tests/conftest.py's, kept
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    """Wait for a process; return (returncode, stdout, stderr)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err
