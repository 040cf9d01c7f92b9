"""The inside of the sandbox: a warm template process that forks one isolated process tree per sandboxed run.

    python -I sandbox_child.py serve CONTROL_FD [--notebook]

The grader (``sandbox.py``) starts this once per grading run, as root when it can, from a read-only runtime folder
that holds only this file, ``sandbox_notebook.py``, a copy of ``gan_utils`` and the public checks. It imports
what every run needs (numpy, torch with ``torch._dynamo``, which ``torch.optim.Adam`` would otherwise import on its
first step, ``gan_utils``; with ``--notebook`` also nbgrader, ipykernel, IPython and matplotlib) once, then waits
for requests on the control socket. It never runs student code and never opens a student's file.

Per request (a JSON config plus three file descriptors: the run's report socket, its stdout and its stderr; a
notebook run also gets the kernel's log) it forks:

- the **keeper** (root, outside the sandbox): creates a new pid namespace for its child, puts that child into the
  submission's cgroup, waits for it at most the wall-clock limit, kills it (and with it the whole namespace) if
  needed, and reports the exit status and CPU time on the report socket;
- the **init** (pid 1 of the new namespace): unshares a mount and a network namespace, builds a new root that
  shows only the paths in the config (the Python installation, read-only; the runtime folder, read-only; the data
  folder, read-only; the scratch folder, writable; a few system files and devices), pivots into it, sets rlimits,
  and then, in ``module`` mode, drops to an unprivileged uid and probes the student's ``gan_pytorch.py`` part by
  part (``run_module``); in ``notebook`` mode, it supervises nbgrader and the kernel (``sandbox_notebook.py``).

Everything here uses the standard library until the process is isolated; the warm modules were imported by the
template, before any student file existed.
"""

from __future__ import annotations

import ctypes
import gc
import io
import json
import os
import platform
import resource
import select
import signal
import socket
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}
EXIT_SETUP_FAILED = 121  # the init could not isolate itself: never run student code then

_libc = ctypes.CDLL(None, use_errno=True)

WARM = ("numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._dynamo", "gan_utils.parts",
        "gan_utils.references", "gan_utils.probes", "gan_utils.judges", "gan_utils.files")
WARM_NOTEBOOK = ("gan_utils.checks", "gan_utils.data", "gan_utils.env", "gan_utils.models", "gan_utils.training",
                 "gan_utils.plots", "matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline",
                 "IPython", "IPython.display", "ipykernel.kernelapp", "ipykernel.ipkernel", "zmq", "sqlalchemy",
                 "nbclient", "jupyter_client.manager", "nbgrader.apps.nbgraderapp", "nbgrader.apps.autogradeapp",
                 "nbgrader.converters.autograde", "nbgrader.preprocessors.execute", "sandbox_notebook")


class PartTimeout(BaseException):
    """Raised by the CPU-time timer; a BaseException so that the probe's ``except Exception`` lets it through."""


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


# --------------------------------------------------------------------------------------------------
# System calls


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(s: str | None) -> bytes | None:
    return s.encode() if s is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = _enc
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    """Die when the parent dies (the grader, the template, the keeper: the chain takes everything down)."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def close_fds(keep: set[int]) -> None:
    """Close every inherited file descriptor but ``keep`` (the template's control socket above all)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep and fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def set_environment(env: dict[str, str]) -> None:
    """Replace the environment with ``env``; forget the temporary folder the template may have cached."""
    import tempfile  # noqa: PLC0415

    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None


def drop_privileges(uid: int) -> None:
    """Become ``uid`` for good (no groups, no way back, no setuid programs); re-arm the parent-death signal, which
    the kernel clears on a change of credentials."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    set_pdeathsig()


# --------------------------------------------------------------------------------------------------
# The template


def warm_up(notebook: bool) -> list[str]:
    """Import what every sandboxed run needs, once; returns the modules that could not be imported."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    missing = []
    import importlib  # noqa: PLC0415

    for name in WARM + (WARM_NOTEBOOK if notebook else ()):
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional module: the run imports it itself if it needs it
            missing.append(f"{name} ({type(exc).__name__})")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    return missing


def serve(control_fd: int, notebook: bool) -> None:
    """The template's loop: one keeper forked per request, until the grader closes the control socket."""
    set_pdeathsig()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder off the path
    ctl = socket.socket(fileno=control_fd)
    missing = warm_up(notebook)
    gc.collect()
    gc.freeze()  # the forks share these pages; keep their collector off them
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    ctl.send(json.dumps({"ready": os.getpid(), "missing": missing}).encode())
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 20, 8)
        except InterruptedError:
            continue
        if not msg:
            return
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            code = 1
            try:
                ctl.close()
                code = keeper(json.loads(msg), fds)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


# --------------------------------------------------------------------------------------------------
# The keeper (outside the sandbox) and the init (pid 1 inside it)


def _report(sock: socket.socket, **fields: object) -> None:
    try:
        sock.send(json.dumps(fields).encode())
    except OSError:
        pass


def keeper(cfg: dict, fds: list[int]) -> int:
    """Start the run's init in a new pid namespace, put it in the cgroup, wait for it, kill it at the wall-clock
    limit, and report how it ended."""
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    set_pdeathsig()
    job_fd, out_fd, err_fd, *extra = fds
    close_fds({job_fd, out_fd, err_fd, *extra})
    job = socket.socket(fileno=job_fd)
    _report(job, pid=os.getpid())
    if cfg["level"] == "namespaces":
        try:
            unshare(CLONE_NEWPID)
        except OSError as exc:
            _report(job, error=f"unshare: {exc}")
            return 1
    go_r, go_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = EXIT_SETUP_FAILED
        try:
            job.close()
            os.close(go_w)
            set_pdeathsig()
            if os.read(go_r, 1) != b"g":  # the keeper died before it let us go (and before pdeathsig was set)
                os._exit(code)
            os.close(go_r)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            for fd in (null, out_fd, err_fd):
                os.close(fd)
            code = init(cfg, extra)
        except BaseException as exc:  # noqa: BLE001 - report and die, whatever it was
            try:
                os.write(2, f"sandbox: {type(exc).__name__}: {exc}\n".encode(errors="replace"))
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(go_r)
    for fd in (out_fd, err_fd, *extra):
        os.close(fd)
    for procs in cfg.get("cgroup_procs", []):
        try:
            with open(procs, "w") as f:
                f.write(str(pid))
        except OSError as exc:  # fail closed: never run without the limits the grader announced
            os.close(go_w)  # the child reads EOF and exits before running anything
            os.waitpid(pid, 0)
            _report(job, error=f"could not put the run into its cgroup {procs}: {exc.strerror}")
            return 1
    os.write(go_w, b"g")
    os.close(go_w)
    timed_out = not _wait_for(pid, cfg["wall_s"])
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)  # pid 1 of its namespace: everything in it dies with it
            if cfg["level"] != "namespaces":
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status, usage = os.wait4(pid, 0)
    _report(job, status=status, timed_out=timed_out, wall_s=time.monotonic() - start,
            cpu_s=usage.ru_utime + usage.ru_stime)
    return 0


def _wait_for(pid: int, seconds: float) -> bool:
    """Whether ``pid`` (a child) ended within ``seconds``; it stays unreaped."""
    deadline = time.monotonic() + seconds
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if fd is not None:
                if select.select([fd], [], [], left)[0]:
                    return True
            else:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
                time.sleep(min(0.02, left))
    finally:
        if fd is not None:
            os.close(fd)


def init(cfg: dict, extra_fds: list[int]) -> int:
    """pid 1 of the run: isolate, limit, then run the mode. Returns the exit code."""
    if cfg["level"] == "namespaces":
        try:
            unshare(CLONE_NEWNS | CLONE_NEWNET)
            build_root(cfg["view"])
            if cfg.get("loopback"):
                loopback_up()
        except OSError as exc:
            os.write(2, f"sandbox: isolation failed, nothing was run: {exc}\n".encode(errors="replace"))
            return EXIT_SETUP_FAILED
    else:  # no pid namespace: a session of its own, so that the keeper can kill the whole group
        os.setsid()
    set_limits(cfg["limits"])
    set_environment(cfg["env"])
    os.chdir(cfg["scratch"])
    sys.path[:0] = [cfg["scratch"]] if cfg["mode"] == "module" else []
    cap = cfg["limits"]["print_chars"]
    sys.stdout = CappedText(sys.stdout, cap)
    sys.stderr = CappedText(sys.stderr, cap)
    if cfg["mode"] == "module":
        if cfg.get("uid") is not None:
            drop_privileges(cfg["uid"])
        run_module(cfg)
        code = 0
    else:
        import sandbox_notebook  # noqa: PLC0415 - warm in the template already

        code = sandbox_notebook.supervise(cfg, extra_fds[0] if extra_fds else None)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def build_root(view: dict) -> None:
    """A new root file system showing only ``view``'s paths, at the same places; then pivot into it.

    ``view``: ``root`` (an empty folder to mount the new root on), ``ro`` and ``rw`` (paths to show read-only or
    writable), ``hide`` (paths inside shown ones to cover with an empty read-only folder), ``links`` ({path:
    target}: symlinks such as /bin -> usr/bin), ``devices`` (device nodes to show) and ``files`` ({path: text}:
    small files to create, e.g. /etc/passwd).
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    new = view["root"]
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")

    def inside(path: str) -> str:
        return new + path

    for path, target in view["links"].items():
        os.makedirs(os.path.dirname(inside(path)), exist_ok=True)
        os.symlink(target, inside(path))
    shown = [(p, True) for p in view["ro"]] + [(p, False) for p in view["rw"]]
    for path, readonly in sorted(shown, key=lambda item: item[0].count("/")):
        dst = inside(path)
        if os.path.isdir(path):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.exists(dst):
                open(dst, "a").close()
        _mount(path, dst, None, MS_BIND)
        _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (MS_RDONLY if readonly else 0))
    for path in view["hide"]:
        dst = inside(path)
        if os.path.isdir(dst) and not os.path.islink(dst):
            _mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=755")
        elif os.path.lexists(dst):
            _mount("/dev/null", dst, None, MS_BIND)
    os.makedirs(inside("/proc"), exist_ok=True)
    _mount("proc", inside("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(inside("/dev/shm"), exist_ok=True)
    _mount("tmpfs", inside("/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for dev in view["devices"]:
        open(inside(dev), "a").close()
        _mount(dev, inside(dev), None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, inside(f"/dev/{name}"))
    for path, text in view["files"].items():
        os.makedirs(os.path.dirname(inside(path)), exist_ok=True)
        with open(inside(path), "w") as f:
            f.write(text)
    os.makedirs(inside("/tmp"), exist_ok=True)
    os.chdir(new)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    else:  # no pivot_root here: chroot holds too, for a process without privileges
        os.chroot(".")
    os.chdir("/")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def loopback_up() -> None:
    """Bring up ``lo`` in the new network namespace (the notebook's kernel talks to nbgrader over 127.0.0.1)."""
    import fcntl  # noqa: PLC0415
    import struct  # noqa: PLC0415

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, struct.pack("16sh22x", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))


def set_limits(limits: dict) -> None:
    mb = 2**20
    for which, value in ((resource.RLIMIT_AS, limits["memory_mb"] * mb), (resource.RLIMIT_CPU, limits["cpu_s"]),
                         (resource.RLIMIT_FSIZE, limits["fsize_mb"] * mb), (resource.RLIMIT_NPROC, limits["nproc"]),
                         (resource.RLIMIT_NOFILE, 256), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


# --------------------------------------------------------------------------------------------------
# Module mode


def _on_timer(signum: int, frame: object) -> None:
    raise PartTimeout()


def _write_npz(path: Path, arrays: dict) -> None:
    import numpy as np  # noqa: PLC0415

    from gan_utils.files import atomic_path  # noqa: PLC0415

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _cpu_timer(seconds: float) -> None:
    """A timer on this process's CPU time (user + system): a slow machine or a busy neighbour does not count."""
    signal.setitimer(signal.ITIMER_PROF, seconds)


def run_module(cfg: dict) -> None:
    """Import the student's ``gan_pytorch.py`` and probe each part on the hidden inputs; each part's outputs go to
    ``out/PART.npz`` as soon as it is done, and ``out/_stage`` says what is running (so that the grader can blame
    the right part if the process dies)."""
    import importlib.util  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from gan_utils.probes import probe  # noqa: PLC0415
    from gan_utils.references import unflatten  # noqa: PLC0415

    signal.signal(signal.SIGPROF, _on_timer)
    limit = cfg["part_timeout_s"]
    out = Path(cfg["scratch"]) / "out"
    out.mkdir(exist_ok=True)
    with np.load(Path(cfg["scratch"]) / "inputs.npz", allow_pickle=False) as data:
        inputs = unflatten({key: data[key] for key in data.files})
    (out / "_stage").write_text("import")
    try:
        spec = importlib.util.spec_from_file_location("gan_pytorch", Path(cfg["scratch"]) / "gan_pytorch.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gan_pytorch"] = module
        _cpu_timer(limit)
        spec.loader.exec_module(module)
        _cpu_timer(0)
    except PartTimeout:
        _write_npz(out / "_import.npz", {"error": np.array(f"importing gan_pytorch.py took more than {limit:g} s "
                                                           "of CPU time (an endless loop?)")})
        return
    except BaseException as exc:  # SyntaxError, SystemExit, MemoryError...: all mean the module is unusable
        _cpu_timer(0)
        line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        _write_npz(out / "_import.npz", {"error": np.array(f"{type(exc).__name__}{line}: {exc}"[:500])})
        return
    for part in cfg["parts"]:
        (out / "_stage").write_text(part)
        try:
            _cpu_timer(limit)
            outputs = probe(part, module, inputs.get(part, {}))
        except PartTimeout:
            outputs = {"error_type": np.array("Timeout"),
                       "error": np.array(f"took more than {limit:g} s of CPU time (an endless loop?)")}
        except BaseException as exc:  # SystemExit, KeyboardInterrupt raised by student code
            outputs = {"error_type": np.array(type(exc).__name__), "error": np.array(f"{type(exc).__name__}: {exc}")}
        finally:
            _cpu_timer(0)
        _write_npz(out / f"{part}.npz", outputs)
    (out / "_stage").write_text("done")


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "serve":
        serve(int(argv[1]), "--notebook" in argv[2:])
        return
    raise SystemExit("usage: sandbox_child.py serve CONTROL_FD [--notebook]")


if __name__ == "__main__":
    main(sys.argv[1:])
