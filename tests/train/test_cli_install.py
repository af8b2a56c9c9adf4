"""Install and test habits: pytest's settings, the CI script, the packaged configs and
the ``jlstm-train`` entry point."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from train_helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PYTEST = PYPROJECT["tool"]["pytest"]["ini_options"]


def test_pytest_runs_without_xdist():
    """Parallel runs are the CI script's choice, not forced by addopts."""
    assert "-n" not in PYTEST["addopts"].split()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "--collect-only", "-q"]
        + ["tests/train/test_train_optim.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_tests_in_parallel():
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert any(line.endswith("python -m pytest -n auto --maxprocesses=4") for line in lines)


def test_slow_marker_is_registered():
    assert any(m.startswith("slow:") for m in PYTEST["markers"])


def test_every_package_is_installed():
    """pyproject lists the packages (configs/ is mapped in as jlstm.configs): a new
    subpackage of jlstm/ must be listed too, or a wheel would leave it out."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "jlstm").rglob("__init__.py")
    }
    assert found | {"jlstm.configs"} == set(setuptools["packages"])
    assert setuptools["package-dir"] == {"jlstm.configs": "configs"}


def test_configs_are_the_package_jlstm_configs():
    import jlstm.configs.default

    assert jlstm.configs.default.__file__ == str(REPO / "configs" / "default.py")


def test_jlstm_train_is_the_console_entry_point():
    """The installed script calls the same main as train.py (the script, not the
    metadata: a stale jlstm.egg-info in the checkout can shadow the installed one)."""
    assert PYPROJECT["project"]["scripts"]["jlstm-train"] == "jlstm.train.cli:main"
    script = (Path(sys.executable).parent / "jlstm-train").read_text()
    assert "from jlstm.train.cli import main" in script
    assert "from jlstm.train.cli import default_workdir, main" in (REPO / "train.py").read_text()


@pytest.mark.slow
def test_jlstm_train_runs_a_shipped_config_outside_the_repository(tmp_path):
    """From a folder without configs/, ``configs/adding.py`` is the installed copy."""
    exe = Path(sys.executable).parent / "jlstm-train"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [str(exe), "--config", "configs/adding.py:smoke", "--workdir", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "result     mse = " in proc.stdout
    assert (tmp_path / "run" / "summary.json").is_file()
