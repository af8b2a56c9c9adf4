"""Building, verifying and loading the CPU kernel (jlstm.fused.kernel): visible and safe.

Most tests replace the compiler step with one that copies a library built
once for the session (fast); the ``slow`` ones run real builds and whole
processes (two builders at once, a truncated library in the cache).
"""

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jlstm import init_params, layer
from jlstm.fused import kernel

pytestmark = pytest.mark.skipif(
    kernel.unavailable() is not None, reason="the CPU kernel cannot be built here"
)


@pytest.fixture(scope="module")
def built() -> bytes:
    """The bytes of a real library (built, or found, in the user's cache)."""
    return kernel.build(quiet=True).read_bytes()


@pytest.fixture
def cache(tmp_path, monkeypatch, built):
    """An empty cache folder, and a compiler step that writes the real library's bytes."""
    monkeypatch.setenv("JLSTM_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_compile(library: Path):
        calls.append(library)
        library.parent.mkdir(parents=True, exist_ok=True)
        kernel._write_atomically(library, built)  # a new file: a loaded one is never rewritten
        kernel._write_atomically(kernel._marker(library), kernel._sha256(library).encode())

    monkeypatch.setattr(kernel, "_compile", fake_compile)
    kernel.library.cache_clear()
    yield tmp_path, calls
    kernel.library.cache_clear()


def test_first_build_says_so_once(cache, capsys):
    folder, calls = cache
    path = kernel.build()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "building the LSTM CPU kernel" in err
    assert str(folder) in err and "python -m jlstm.fused.kernel" in err
    assert "JLSTM_CPU_KERNEL=0" in err
    assert kernel.build() == path and len(calls) == 1  # found, verified, not rebuilt
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_marker", "delete"])
def test_a_damaged_library_is_rebuilt_not_loaded(cache, damage):
    folder, calls = cache
    path = kernel.build(quiet=True)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "no_marker":
        kernel._marker(path).unlink()
    else:
        path.unlink()
    assert not kernel._intact(path)
    kernel.build(quiet=True)
    assert len(calls) == 2 and kernel._intact(path) and path.read_bytes() == data


def test_a_library_without_its_symbols_is_rebuilt(cache, built):
    folder, calls = cache
    path = kernel.library_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    import ctypes.util

    other = Path(ctypes.util.find_library("m") or "")
    candidates = [p for p in (other, Path("/lib/x86_64-linux-gnu/libm.so.6")) if p.is_file()]
    if not candidates:
        pytest.skip("no system library to stand in for a wrong one")
    kernel._write_atomically(path, candidates[0].read_bytes())  # loads, lacks the symbols
    kernel._write_atomically(kernel._marker(path), kernel._sha256(path).encode())
    lib = kernel.library()
    assert int(lib.JlstmVectorLanes()) in (4, 8, 16) and len(calls) == 1


def test_empty_cache_variable_means_the_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("JLSTM_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernel._cache_dir() == tmp_path / "jlstm"


def test_stale_temporary_files_are_removed(tmp_path):
    old, fresh = tmp_path / ".build-old.so", tmp_path / ".build-fresh.so"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    past = time.time() - 2 * kernel._STALE_BUILD
    os.utime(old, (past, past))
    kernel._remove_stale_builds(tmp_path)
    assert not old.exists() and fresh.exists()


def test_a_hung_compiler_is_stopped_and_killed(tmp_path, monkeypatch):
    pid_file = tmp_path / "pid"
    compiler = tmp_path / "hang-c++"
    compiler.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setattr(kernel, "BUILD_TIMEOUT", 1)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="took more than 1 s and was stopped"):
        kernel._compile(tmp_path / "lib.so")
    assert time.monotonic() - start < 30
    pid = int(pid_file.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(tmp_path.glob(".build-*"))  # its temporary file is gone


def test_a_failed_build_warns_at_the_callers_line_and_runs_the_scans(monkeypatch):
    def broken():
        raise RuntimeError("the compiler failed: test")

    monkeypatch.setattr(kernel, "library", broken)
    monkeypatch.setattr(kernel, "_failed_build", None)
    kernel.registered.cache_clear()
    # A shape no other test lowers, so that this call is lowered (not found in a cache).
    params = init_params(jax.random.key(0), 3, 7)
    xs = jnp.ones((3, 11, 3))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hs, _ = layer(params, xs, implementation="cpu_kernel")
        reference, _ = layer(params, xs, implementation="reference")
        assert [w.filename for w in caught] == [__file__], [str(w.message) for w in caught]
        assert "could not be built" in str(caught[0].message)
        assert jnp.allclose(hs, reference, atol=1e-6)
        from jlstm import implementation

        assert "could not be built" in (kernel.unavailable() or "")
        assert implementation.why_not("cpu_kernel", _call()) is not None
    finally:
        kernel.registered.cache_clear()
        monkeypatch.setattr(kernel, "_failed_build", None)


def _call():
    import numpy as np

    from jlstm import cells, implementation

    return implementation.Call(
        cell=cells.get("lstm"),
        batch=2,
        steps=5,
        input_size=3,
        hidden=4,
        param_dtypes=(np.dtype("float32"),) * 3,
        state_dtype=np.dtype("float32"),
        compute=np.dtype("float32"),
        backend="cpu",
        devices=1,
    )


USE_KERNEL = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp
    from jlstm import init_params, layer
    p = init_params(jax.random.key(0), 3, 4)
    hs, _ = layer(p, jnp.ones((2, 5, 3)), implementation="cpu_kernel")
    ref, _ = layer(p, jnp.ones((2, 5, 3)), implementation="reference")
    print(json.dumps({"diff": float(jnp.abs(hs - ref).max())}))
    """
)


def _run(env, script=USE_KERNEL):
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_build_into_an_empty_cache_at_once(tmp_path):
    env = {"JLSTM_CACHE_DIR": str(tmp_path)}
    procs = [_run(env), _run(env)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["diff"] < 1e-6
    libraries = list(tmp_path.glob("lstm_cpu-*.so"))
    assert len(libraries) == 1 and kernel._marker(libraries[0]).exists()
    assert not list(tmp_path.glob(".build-*"))


@pytest.mark.slow
def test_a_truncated_cached_library_does_not_crash_the_process(tmp_path):
    env = {"JLSTM_CACHE_DIR": str(tmp_path)}
    first = _run(env)
    assert first.communicate(timeout=300) and first.returncode == 0
    (library,) = tmp_path.glob("lstm_cpu-*.so")
    library.write_bytes(library.read_bytes()[:4096])  # loading this would SIGBUS
    second = _run(env)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert "building the LSTM CPU kernel" in err  # rebuilt, said so
    assert json.loads(out.strip().splitlines()[-1])["diff"] < 1e-6


@pytest.mark.slow
def test_the_ahead_of_time_build_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jlstm.fused.kernel"],
        env={**os.environ, "JLSTM_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "jlstm CPU kernel:" in proc.stdout and str(tmp_path) in proc.stdout
    assert "float lanes" in proc.stdout
