"""The inside of the sandbox: runs the student's code in the isolated subprocess, never in the grader's process.

    python -I sandbox_child.py CONFIG.json

Started as root inside fresh mount, network and pid namespaces (see ``sandbox.py``), it first hides the
instructor's paths, makes the file system read-only except its scratch directory, sets resource limits and
drops to an unprivileged uid; only then does it touch student code. It uses the standard library until then,
and is copied into a runtime directory next to a copy of ``gan_utils`` so that nothing of the course repository
is on its path.

Modes:
- ``module``: import the student's ``gan_pytorch.py`` and run ``gan_utils.probes.probe`` for each part on the
  inputs in ``inputs.npz`` (inputs only: no reference values ever enter this process); each part's outputs
  go to ``out/PART.npz`` as plain arrays, written as soon as the part is done.
- ``notebook``: run ``nbgrader autograde`` on a throw-away course in the scratch directory.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38


class PartTimeout(BaseException):
    """Raised by the interval timer; a BaseException so that the probe's ``except Exception`` lets it through."""


class CappedText(io.TextIOBase):
    """A text stream that keeps writing to ``target`` until ``limit`` characters, then drops the rest."""

    def __init__(self, target: io.TextIOBase, limit: int) -> None:
        self.target, self.left, self.dropped = target, limit, 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if self.left > 0:
            part = s[: self.left]
            self.target.write(part)
            self.left -= len(part)
            if self.left <= 0:
                self.target.write("\n[grader: output truncated here]\n")
            self.dropped += len(s) - len(part)
        else:
            self.dropped += len(s)
        return len(s)

    def flush(self) -> None:
        self.target.flush()


def _run(*argv: str) -> None:
    exe = shutil.which(argv[0], path="/usr/sbin:/usr/bin:/sbin:/bin") or argv[0]
    subprocess.run([exe, *argv[1:]], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def setup_namespace(cfg: dict) -> None:
    """Hide instructor paths, make / read-only except the scratch directory (we are root in our own namespaces).

    A hidden path may contain a path the sandbox needs (Python under /root, the scratch directory under the
    grader's work folder): that one is bind-mounted aside first, then moved back into the empty tmpfs.
    """
    _run("mount", "-t", "tmpfs", "-o", "size=64m,mode=1777", "tmpfs", "/dev/shm")
    keep = [k for k in cfg["keep"] if not any(_under(k, o) and k != o for o in cfg["keep"])]
    for i, hide in enumerate(sorted(cfg["hide"], key=len)):
        if not os.path.lexists(hide) or any(_under(hide, k) for k in keep):
            continue
        if not os.path.isdir(hide):
            _run("mount", "--bind", "/dev/null", hide)
            continue
        inner = [k for k in keep if _under(k, hide)]
        staged = []
        for j, k in enumerate(inner):
            stage = f"/dev/shm/.stage{i}.{j}"
            os.mkdir(stage)
            _run("mount", "--rbind", k, stage)
            staged.append((stage, k))
        _run("mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", hide)
        for stage, k in staged:
            os.makedirs(k, exist_ok=True)
            _run("mount", "--move", stage, k)
        _run("mount", "-o", "remount,ro", hide)
    scratch = cfg["scratch"]
    _run("mount", "--bind", scratch, scratch)
    _run("mount", "-o", "remount,bind,ro", "/")
    if cfg.get("loopback"):  # the notebook kernel talks to its driver over 127.0.0.1
        _run("ip", "link", "set", "lo", "up")


def set_limits(cfg: dict) -> None:
    mb = 2**20
    limits = cfg["limits"]
    for which, value in ((resource.RLIMIT_AS, limits["memory_mb"] * mb), (resource.RLIMIT_CPU, limits["cpu_s"]),
                         (resource.RLIMIT_FSIZE, limits["fsize_mb"] * mb), (resource.RLIMIT_NPROC, limits["nproc"]),
                         (resource.RLIMIT_NOFILE, 256), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _write_npz(path: Path, arrays: dict) -> None:
    import numpy as np  # noqa: PLC0415 - only after privileges are dropped

    from gan_utils.files import atomic_path  # noqa: PLC0415

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def run_module(cfg: dict) -> None:
    import importlib.util  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    from gan_utils.probes import probe  # noqa: PLC0415
    from gan_utils.references import unflatten  # noqa: PLC0415

    out = Path(cfg["scratch"]) / "out"
    out.mkdir(exist_ok=True)
    with np.load(Path(cfg["scratch"]) / "inputs.npz", allow_pickle=False) as data:
        inputs = unflatten({key: data[key] for key in data.files})
    (out / "_stage").write_text("import")
    try:
        spec = importlib.util.spec_from_file_location("gan_pytorch", Path(cfg["scratch"]) / "gan_pytorch.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gan_pytorch"] = module
        signal.setitimer(signal.ITIMER_REAL, cfg["part_timeout_s"])
        spec.loader.exec_module(module)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except PartTimeout:
        _write_npz(out / "_import.npz", {"error": np.array(f"importing gan_pytorch.py took more than "
                                                           f"{cfg['part_timeout_s']} s (an endless loop?)")})
        return
    except BaseException as exc:  # SyntaxError, SystemExit, MemoryError...: all mean the module is unusable
        signal.setitimer(signal.ITIMER_REAL, 0)
        line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        _write_npz(out / "_import.npz", {"error": np.array(f"{type(exc).__name__}{line}: {exc}"[:500])})
        return
    for part in cfg["parts"]:
        (out / "_stage").write_text(part)
        try:
            signal.setitimer(signal.ITIMER_REAL, cfg["part_timeout_s"])
            outputs = probe(part, module, inputs.get(part, {}))
        except PartTimeout:
            outputs = {"error_type": np.array("Timeout"),
                       "error": np.array(f"took more than {cfg['part_timeout_s']} s (an endless loop?)")}
        except BaseException as exc:  # SystemExit, KeyboardInterrupt raised by student code
            outputs = {"error_type": np.array(type(exc).__name__), "error": np.array(f"{type(exc).__name__}: {exc}")}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _write_npz(out / f"{part}.npz", outputs)
    (out / "_stage").write_text("done")


def run_notebook(cfg: dict) -> None:
    """``nbgrader autograde`` of one student on the throw-away course that the grader laid out in scratch."""
    course = Path(cfg["scratch"]) / "course"
    os.chdir(course)
    argv = [sys.executable, "-m", "nbgrader", "autograde", cfg["assignment"], "--student", cfg["student"],
            "--force", "--log-level=WARN"]
    code = subprocess.run(argv, env=os.environ.copy()).returncode
    (Path(cfg["scratch"]) / "autograde.rc").write_text(str(code))


def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    if cfg.get("namespaces"):
        setup_namespace(cfg)
    set_limits(cfg)
    if cfg.get("uid") is not None:
        drop_privileges(cfg["uid"])
    os.chdir(cfg["scratch"])
    sys.path[:0] = [cfg["runtime"], cfg["scratch"]]
    cap = cfg["limits"]["print_chars"]
    sys.stdout = CappedText(sys.stdout, cap)
    sys.stderr = CappedText(sys.stderr, cap)

    def on_alarm(signum: int, frame: object) -> None:
        raise PartTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    {"module": run_module, "notebook": run_notebook}[cfg["mode"]](cfg)
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":
    main(sys.argv[1])
