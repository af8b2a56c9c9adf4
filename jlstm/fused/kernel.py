"""The CPU kernels of the LSTM's loops (``jlstm/csrc/lstm_cpu.cc``): build, verify, load.

The kernels compute what :func:`jlstm.fused.loops.forward` and
:func:`jlstm.fused.loops.adjoint` compute, in one XLA FFI custom call per
loop, with each step's product split over two threads (XLA:CPU runs it on one)
and the gate arithmetic done on the product's registers.
:mod:`jlstm.fused.primitives` lowers to them on the CPU backend only.

The library is compiled from source the first time a computation that uses it
is lowered for the CPU (never while tracing, never for another backend), with
the system's C++ compiler (``$CXX``, else ``c++``) and ``-march=native`` plus
``$JLSTM_CXXFLAGS`` (``-march=x86-64-v3``, say, for one build that runs on
every AVX2 machine of a cluster), into a cache folder (``$JLSTM_CACHE_DIR``,
else ``$XDG_CACHE_HOME/jlstm`` or ``~/.cache/jlstm``). One line on stderr says
so when it happens. The file name carries a hash of the source, the compiler
command, jaxlib's version and this CPU's feature flags, so a shared home folder
never hands one machine's build to another; a marker beside it holds the
library's SHA-256, written after a complete build and checked before every
load, so a truncated or damaged library is rebuilt, not loaded. Without a
compiler, or if the build fails, jlstm warns once (at the caller's line) and
lowers the ``lax.scan`` loops instead: same results, slower.

``python -m jlstm.fused.kernel`` builds it ahead of time (for clusters and
containers) and says what it built. ``JLSTM_CPU_KERNEL=0`` switches it off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "lstm_cpu.cc"
# FFI target -> the library's symbol.
TARGETS = {
    "jlstm_lstm_forward": "JlstmLstmForward",
    "jlstm_lstm_forward_saving": "JlstmLstmForwardSaving",
    "jlstm_lstm_backward": "JlstmLstmBackward",
}
# Seconds the compiler may take before it is killed (it takes about 5).
BUILD_TIMEOUT = 120
# A temporary file of a build older than this was left by a killed build.
_STALE_BUILD = 600


def enabled() -> bool:
    """The ``JLSTM_CPU_KERNEL`` switch: anything but 0/false/off keeps the kernel on."""
    return os.environ.get("JLSTM_CPU_KERNEL", "1").strip().lower() not in ("0", "false", "off")


def unavailable() -> str | None:
    """Why the kernel cannot run here, without building it (None: it can be tried)."""
    if not enabled():
        return "it is switched off by JLSTM_CPU_KERNEL=0"
    if platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"):
        return f"it is built for x86-64 and arm64 only (this machine is {platform.machine()})"
    if _failed_build is not None:
        return f"it could not be built ({_failed_build})"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler to build it ({compiler!r} not found; set CXX)"
    return None


# ------------------------------------------------------------------ which shapes it wins

# Below AVX-512 the kernels' register tiles are half as wide, and XLA's own
# products win once a step is large: on an AVX-512 EPYC with the AVX2 build
# (same FMA throughput), the forward measured 8.6 against 10.3 ms for the scan
# at S1 (3.1 M multiply-adds a step) and 13.1 against 13.2 at S3, but 90
# against 83 at S2 (25 M) and 546 against 383 at S4 (403 M).
_NARROW_MAX_STEP = 8_000_000
# On Intel Xeons with AMX (Sapphire Rapids and later) XLA's own products win at
# large steps. benchmarks/bench.py on a 2-core Xeon with AVX-512 and AMX,
# fwd+bwd ms, kernel / 'xla' loops / 'reference' (autodiff of the scan): S1
# (3.1 M multiply-adds a step) 13.5 / 19.5 / 38.7, S2 (25 M) 204 / 273 / 306, S4
# (403 M) 972 / 955 / 765. So there the kernel runs up to this step size, and
# above it the reference scan (see large_steps_prefer_reference).
_AMX_MAX_STEP = 64_000_000


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def vector_lanes() -> int:
    """The SIMD width, in floats, that the build will have (read from the CPU's flags and
    ``$JLSTM_CXXFLAGS``, without building)."""
    flags = cpu_flags()
    extra = os.environ.get("JLSTM_CXXFLAGS", "")
    wide = "avx512f" in flags
    if "-march=" in extra:
        wide = any(s in extra for s in ("avx512", "x86-64-v4", "sapphirerapids", "znver4"))
    if wide:
        return 16
    if "avx" in flags or platform.machine().lower() in ("aarch64", "arm64"):
        return 8
    return 4


def cpu_class() -> str:
    """The class of CPU that :func:`faster` has a rule for: "avx512-amx", "avx512", "narrow"."""
    if vector_lanes() < 16:
        return "narrow"
    return "avx512-amx" if "amx_tile" in cpu_flags() else "avx512"


def faster(batch: int, inputs: int, hidden: int) -> bool:
    """Whether the kernel beats XLA's loops for a step of this shape on this CPU class
    (measured per class; see the constants above)."""
    step = batch * (inputs + hidden) * 4 * hidden  # multiply-adds of one step's product
    kind = cpu_class()
    if kind == "narrow":
        return step <= _NARROW_MAX_STEP
    if kind == "avx512-amx":
        return step <= _AMX_MAX_STEP
    return True


def large_steps_prefer_reference(batch: int, inputs: int, hidden: int) -> bool:
    """Whether, on this CPU class, autodiff of the plain scan beats both of the LSTM's
    fast loops at this step size (measured on AMX Xeons only; see _AMX_MAX_STEP)."""
    step = batch * (inputs + hidden) * 4 * hidden
    return cpu_class() == "avx512-amx" and step > _AMX_MAX_STEP


# ------------------------------------------------------------------ build and load

_failed_build: str | None = None


def _cache_dir() -> Path:
    if os.environ.get("JLSTM_CACHE_DIR"):
        return Path(os.environ["JLSTM_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jlstm"


def _compile_command(output: Path) -> list[str]:
    import jax

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler!r} not found; set CXX)")
    return [
        compiler,
        *("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w"),
        *os.environ.get("JLSTM_CXXFLAGS", "").split(),
        f"-I{jax.ffi.include_dir()}",
        str(SOURCE),
        "-o",
        str(output),
    ]


def _cpu_identity() -> str:
    """This CPU's model and feature flags (what ``-march=native`` compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() in wanted]
    return "\n".join(sorted(set(lines)))


def library_path() -> Path:
    """Where the library for this source, compiler command, jaxlib and CPU lies (or will)."""
    import jaxlib

    digest = hashlib.sha256()
    command = " ".join(_compile_command(Path("OUT")))
    for part in (SOURCE.read_bytes(), command.encode(), jaxlib.__version__.encode()):
        digest.update(part)
    digest.update(_cpu_identity().encode())
    return _cache_dir() / f"lstm_cpu-{digest.hexdigest()[:16]}.so"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _marker(library: Path) -> Path:
    return library.with_suffix(".sha256")


def _intact(library: Path) -> bool:
    """The library exists and matches the hash written after its build."""
    try:
        return _marker(library).read_text().strip() == _sha256(library)
    except OSError:
        return False


def _write_atomically(path: Path, data: bytes) -> None:
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".build-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _remove_stale_builds(folder: Path) -> None:
    """Temporary files of builds that were killed (older than ``_STALE_BUILD`` seconds)."""
    now = time.time()
    for leftover in folder.glob(".build-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_BUILD:
                leftover.unlink()
        except OSError:
            pass


def _compile(library: Path) -> None:
    """Compile into a temporary file beside ``library``, then rename it into place and
    write its marker: concurrent builders never see half a file."""
    folder = library.parent
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(folder)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        process = subprocess.Popen(
            _compile_command(Path(partial)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so a timeout kills it whole
        )
        try:
            _, stderr = process.communicate(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(
                f"the compiler took more than {BUILD_TIMEOUT} s and was stopped"
            ) from None
        if process.returncode != 0:
            raise RuntimeError(f"the compiler failed: {stderr.strip()[-2000:]}")
        digest = _sha256(Path(partial))
        os.replace(partial, library)
        _write_atomically(_marker(library), digest.encode())
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def build(*, quiet: bool = False) -> Path:
    """The verified library, compiled first if it is missing or damaged."""
    library = library_path()
    if _intact(library):
        return library
    if not quiet:
        print(
            f"jlstm: building the LSTM CPU kernel (once per machine, about 5 s) into "
            f"{library.parent}; `python -m jlstm.fused.kernel` builds it ahead of time, "
            "JLSTM_CPU_KERNEL=0 skips it",
            file=sys.stderr,
            flush=True,
        )
    _compile(library)
    return library


def _load(library: Path) -> ctypes.CDLL:
    lib = ctypes.cdll.LoadLibrary(str(library))
    for symbol in (*TARGETS.values(), "JlstmVectorLanes"):
        getattr(lib, symbol)  # AttributeError if the library lacks it
    return lib


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded library, built (or rebuilt, if the cached one fails to load) on first use."""
    path = build()
    try:
        return _load(path)
    except (OSError, AttributeError):
        _marker(path).unlink(missing_ok=True)  # not intact after all: rebuild it once
        path = build()
        # The loader would hand back the bad library loaded under this name: load the
        # new one through a fresh name (a link, removed once loaded).
        alias = path.with_name(f".build-reload-{os.getpid()}.so")
        alias.unlink(missing_ok=True)
        os.link(path, alias)
        try:
            return _load(alias)
        finally:
            alias.unlink(missing_ok=True)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that attributes a warning to the first frame outside jlstm and
    JAX: the user's line that ran the layer."""
    skip = (
        str(Path(__file__).resolve().parent.parent),
        str(Path(sys.modules["jax"].__file__).resolve().parent.parent),
    )
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


@functools.cache
def registered() -> bool:
    """Build (or find) the library and register its targets; False, with a warning, if not."""
    global _failed_build
    import jax

    try:
        lib = library()
        for target, symbol in TARGETS.items():
            jax.ffi.register_ffi_target(
                target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu"
            )
    except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as e:
        _failed_build = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        warnings.warn(
            f"jlstm: the CPU kernels could not be built ({e}); the layer's loops run as "
            "lax.scans instead (slower on CPU, same results). Set JLSTM_CPU_KERNEL=0 to silence.",
            RuntimeWarning,
            stacklevel=_caller_stacklevel(),
        )
        return False
    return True


def main() -> None:
    """``python -m jlstm.fused.kernel``: build the library now and say what was built."""
    start = time.perf_counter()
    path = build(quiet=True)
    lanes = int(_load(path).JlstmVectorLanes())
    print(
        f"jlstm CPU kernel: {path} ({path.stat().st_size // 1024} KiB, {lanes} float lanes, "
        f"CPU class {cpu_class()}; {time.perf_counter() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
