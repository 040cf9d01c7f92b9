"""The outside of the sandbox: start ``sandbox_child.py`` in an isolated subprocess and wait for it, whatever the
student code does.

Layers, strongest first; ``isolation()`` says which this machine allows:

- ``namespaces``: as root with a working ``unshare``: new mount, network and pid namespaces; inside them the
  instructor's paths are hidden under empty read-only tmpfs mounts, ``/`` is remounted read-only except the
  scratch directory, and the process drops to an unprivileged uid of its own (one per parallel slot).
- ``uid``: root without namespaces: only the uid drop; the instructor's files must not be world-readable.
- ``rlimits``: neither; resource limits and the timeout only.

Always: rlimits (address space, CPU, file size, processes, open files), a wall-clock timeout that kills the
whole process group, stdout/stderr into files of capped size outside the scratch directory, a scrubbed
environment with ``HOME``/``TMPDIR`` in scratch, and ``python -I`` (no cwd, no user site, no PYTHON* vars).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gan_utils.data import DATA_DIR_ENV, resolve_data_dir

FIRST_UID = 61000  # sandbox uids: FIRST_UID + slot, so that parallel sandboxes cannot touch each other


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    wall_s: float = 90.0
    notebook_wall_s: float = 300.0  # nbgrader, a kernel, every check cell; training cells skip themselves
    part_timeout_s: float = 20.0
    cpu_s: int = 180
    memory_mb: int = 6144  # address space; importing torch alone maps ~3.4 GB of it
    fsize_mb: int = 64
    nproc: int = 512  # per uid, threads included
    print_chars: int = 200_000


@dataclass
class RunResult:
    """What came back from one sandboxed run (never anything the student code could have pickled)."""

    returncode: int | None
    timed_out: bool
    wall_s: float
    stdout_tail: str
    stderr_tail: str
    isolation: str
    limit_s: float = 0.0

    def describe(self, limits: Limits) -> str:
        """A one-line reason for an abnormal end, or '' for a normal exit 0."""
        if self.timed_out:
            return f"stopped after the {self.limit_s:.0f} s time limit (an endless loop, or far too slow)"
        code = self.returncode
        if code is None or code == 0:
            return ""
        sig = -code if code < 0 else code - 128 if code > 128 else 0
        names = {signal.SIGKILL: "killed (SIGKILL: out of memory or a limit)", signal.SIGXCPU:
                 f"used more than {limits.cpu_s} s of CPU", signal.SIGXFSZ:
                 f"wrote a file or output larger than {limits.fsize_mb} MB", signal.SIGSEGV: "crashed (SIGSEGV)"}
        if sig in names:
            return f"the grading process {names[sig]}"
        last = self.stderr_tail.strip().splitlines()[-1:] or [""]
        return f"the grading process exited with code {code}: {last[0][:300]}"


def _tail(path: Path, n: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - n))
        return f.read().decode("utf-8", "replace")


@functools.cache
def isolation() -> str:
    """The strongest isolation this machine allows: 'namespaces', 'uid' or 'rlimits'."""
    if os.geteuid() != 0:
        return "rlimits"
    unshare = shutil.which("unshare")
    if unshare and shutil.which("mount"):
        probe = subprocess.run([unshare, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
                                "true"], capture_output=True)
        if probe.returncode == 0:
            return "namespaces"
    return "uid"


def run_sandboxed(mode: str, scratch: Path, runtime: Path, log_dir: Path, slot: int, limits: Limits,
                  hide: list[Path], extra: dict | None = None, env: dict[str, str] | None = None) -> RunResult:
    """Run ``runtime/sandbox_child.py`` in ``mode`` on ``scratch``; logs go to ``log_dir`` (which the sandbox cannot
    see)."""
    level = isolation()
    uid = FIRST_UID + slot if level in ("namespaces", "uid") else None
    (scratch / "tmp").mkdir(exist_ok=True)
    if uid is not None:
        for root, dirs, files in os.walk(scratch):
            for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
                os.lchown(name, uid, uid)
        os.chmod(scratch, 0o700)
    keep = [Path(sys.prefix), Path(sys.base_prefix), runtime, scratch]
    # MNIST stays readable (the sandbox's gan_utils is a copy, so its default data/ would point nowhere)
    data = resolve_data_dir().resolve()
    data_dir = str(data) if data.is_dir() else ""
    if data_dir:
        keep.append(data)
    cfg = {"mode": mode, "scratch": str(scratch), "runtime": str(runtime), "uid": uid,
           "namespaces": level == "namespaces", "hide": [str(p.resolve()) for p in hide],
           "keep": [str(p.resolve()) for p in keep],
           "limits": asdict(limits), "part_timeout_s": limits.part_timeout_s, **(extra or {})}
    config = log_dir / f"{mode}.json"
    config.write_text(json.dumps(cfg))
    argv = [sys.executable, "-I", str(runtime / "sandbox_child.py"), str(config)]
    if level == "namespaces":
        argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--", *argv]
    base_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(scratch),
                "TMPDIR": str(scratch / "tmp"), "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    if data_dir:
        base_env[DATA_DIR_ENV] = data_dir
    out_path, err_path = log_dir / f"{mode}.stdout", log_dir / f"{mode}.stderr"
    wall = limits.notebook_wall_s if mode == "notebook" else limits.wall_s
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=scratch,
                                env={**base_env, **(env or {})}, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:  # the whole group; with a pid namespace, unshare's --kill-child takes the rest
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    return RunResult(proc.returncode, timed_out, time.monotonic() - start, _tail(out_path), _tail(err_path), level,
                     wall)
