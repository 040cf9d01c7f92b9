"""The outside of the sandbox: what each sandboxed run may see and use, and the warm template that starts it.

Layers, strongest first; ``isolation()`` says which this machine allows:

- ``namespaces``: as root with working namespaces: each run gets new pid, mount and network namespaces; its root
  file system is rebuilt from a list of what it may see (``View``: the Python installation and the runtime folder
  read-only, the data folder read-only, its scratch folder writable, a few system files and devices; nothing of
  the course, the submissions, the output or other students), and it drops to an unprivileged uid of its own.
- ``uid``: root without namespaces: the uid drop only; the instructor's files must not be world-readable.
- ``rlimits``: neither; resource limits and the timeout only.

Independently, ``Cgroups`` puts each submission (all of its processes: the module probe, nbgrader, the kernel and
anything they fork) in a cgroup of its own with a CPU quota, a memory limit and a process limit, where the
machine allows it (root with a writable cgroup v1 hierarchy, or a delegated cgroup v2 one).

Always: rlimits per process (address space, CPU, file size, processes per uid, open files), a wall-clock limit per
run after which the whole run (its pid namespace, or its process group) is killed, part timers on CPU time,
stdout/stderr into files of capped size that the run cannot see, a scrubbed environment.

Speed: the runs are forked from one ``Template`` per grading run, a process that has imported torch, numpy,
gan_utils (and for notebooks nbgrader, ipykernel, IPython, matplotlib) once; see ``sandbox_child.py``.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from gan_utils.data import DATA_DIR_ENV, resolve_data_dir

FIRST_UID = 61000  # sandbox uids: FIRST_UID + 3 * slot + (0: module probe, 1: nbgrader, 2: kernel)
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/nsswitch.conf", "/etc/localtime",
                "/etc/hosts", "/etc/host.conf", "/etc/mime.types")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
RUNTIME_FILES = ("sandbox_child.py", "sandbox_notebook.py")


@dataclass(frozen=True)
class Limits:
    """Resource limits of the sandboxed runs."""

    wall_s: float = 90.0  # wall clock per sandboxed run, module and notebook alike (``--timeout``)
    part_timeout_s: float = 20.0  # CPU seconds per part of the module (and for importing it)
    cell_timeout_s: float = 30.0  # wall clock per notebook cell (nbgrader's Execute.timeout)
    cpu_s: int = 180  # CPU seconds per process (RLIMIT_CPU)
    memory_mb: int = 6144  # address space per process (RLIMIT_AS); the warm template alone maps ~3.6 GB
    cgroup_memory_mb: int = 4096  # memory of all of a submission's processes together (cgroup)
    cpus: float = 0.0  # CPU quota of a submission (cgroup); 0: the machine's cores / --jobs, at least 1
    fsize_mb: int = 64
    nproc: int = 512  # processes per sandbox uid (RLIMIT_NPROC) and per submission (cgroup)
    print_chars: int = 200_000


@dataclass
class RunResult:
    """How one sandboxed run ended (never anything the student code could have pickled)."""

    returncode: int | None
    timed_out: bool
    wall_s: float
    stdout_tail: str
    stderr_tail: str
    isolation: str
    limit_s: float = 0.0
    cpu_s: float = 0.0
    oom: bool = False

    def describe(self, limits: Limits) -> str:
        """A one-line reason for an abnormal end, or '' for a normal exit 0."""
        if self.timed_out:
            return f"stopped after the {self.limit_s:g} s time limit (an endless loop, or far too slow)"
        code = self.returncode
        if code is None or code == 0:
            return ""
        if self.oom:
            return (f"the grading process was killed: the submission's processes together used more than "
                    f"{limits.cgroup_memory_mb} MB of memory")
        sig = -code if code < 0 else 0
        names = {signal.SIGKILL: "killed (SIGKILL: out of memory or a limit)", signal.SIGXCPU:
                 f"used more than {limits.cpu_s} s of CPU", signal.SIGXFSZ:
                 f"wrote a file or output larger than {limits.fsize_mb} MB", signal.SIGSEGV: "crashed (SIGSEGV)"}
        if sig in names:
            return f"the grading process {names[sig]}"
        last = self.stderr_tail.strip().splitlines()[-1:] or [""]
        return f"the grading process exited with code {code}: {last[0][:300]}"


def _tail(path: Path, n: int = 4000) -> str:
    """The end of a log, cleaned; '' if it cannot be read safely. A run's logs lie in a folder of the grader's,
    but at the weakest isolation level (same uid) a run could replace one with a FIFO or a symlink, so they are
    read like everything else a sandbox could have touched: no link followed, no FIFO waited on."""
    from instructor.safe_io import clean_text, read_tail  # noqa: PLC0415

    try:
        return clean_text(read_tail(path.parent, path.name, n).decode("utf-8", "replace"))
    except OSError:
        return ""


def uids(slot: int) -> dict[str, int]:
    """The sandbox uids of a parallel slot: the module probe, nbgrader (driver) and the notebook's kernel."""
    base = FIRST_UID + 3 * slot
    return {"probe": base, "driver": base + 1, "kernel": base + 2}


def all_uids(slots: int) -> set[int]:
    """Every sandbox uid of the first ``slots`` parallel slots."""
    return {uid for slot in range(slots) for uid in uids(slot).values()}


_ISOLATION_TEST = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x00020000 | 0x20000000 | 0x40000000) == 0
assert libc.mount(None, b"/", None, (1 << 18) | 16384, None) == 0
assert libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"size=1m") == 0
"""


@functools.cache
def isolation() -> str:
    """The strongest isolation this machine allows: 'namespaces', 'uid' or 'rlimits'."""
    if os.geteuid() != 0:
        return "rlimits"
    probe = subprocess.run([sys.executable, "-I", "-c", _ISOLATION_TEST], capture_output=True)
    return "namespaces" if probe.returncode == 0 else "uid"


# --------------------------------------------------------------------------------------------------
# What a run sees


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.cache
def python_paths() -> tuple[str, ...]:
    """The Python installation: its prefixes and the folders on ``python -I``'s path (site-packages, and what
    ``.pth`` files add), resolved."""
    code = ("import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,"
            " *sys.path]))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    found = [_real(sys.executable), *json.loads(out.stdout)]
    return tuple(dict.fromkeys(_real(p) for p in found if p and os.path.exists(p)))


def _outermost(paths: list[str]) -> list[str]:
    keep: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(_under(p, k) for k in keep):
            keep.append(p)
    return keep


def view(root: Path, scratch: Path, runtime: Path, secrets: list[Path]) -> dict:
    """What one run's new root shows (``sandbox_child.build_root``), at the same paths as outside.

    Read-only: the Python installation (its prefixes and the folders on its path, but none that holds a secret:
    an editable install of the course would put the course on it), the runtime folder, the data folder, the system
    folders and a few system files; writable: ``scratch``. ``secrets`` (the course, the submissions, the output,
    the work folder) that lie inside a shown folder anyway (a course inside the Python prefix) are covered with an
    empty folder.
    """
    secret = [_real(s) for s in secrets]
    prefixes = {_real(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    python = [p for p in python_paths() if p in prefixes or not any(_under(s, p) for s in secret)]
    links, ro = {}, []
    for p in (*SYSTEM_PATHS, *SYSTEM_FILES):
        if os.path.islink(p):
            links[p] = os.readlink(p)
        elif os.path.exists(p):
            ro.append(p)
    data = resolve_data_dir()
    if data.is_dir():
        ro.append(_real(data))
    ro = _outermost([*ro, *python, _real(runtime)])
    rw = [_real(scratch)]
    ro = [p for p in ro if not _under(p, rw[0])]
    shown = ro + rw
    hide = [s for s in secret if any(_under(s, p) and s != p for p in shown) and not any(_under(p, s) for p in rw)]
    users = "\n".join(f"{name}:x:{uid}:{uid}:{name}:/nonexistent:/usr/sbin/nologin" for name, uid in
                      (("root", 0), ("nobody", 65534))) + "\n"
    return {"root": str(root), "ro": ro, "rw": rw, "hide": hide, "links": links,
            "devices": [d for d in DEVICES if os.path.exists(d)],
            "files": {"/etc/passwd": users, "/etc/group": "root:x:0:\nnogroup:x:65534:\n"}}


# --------------------------------------------------------------------------------------------------
# Cgroups


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@dataclass
class Cgroup:
    """One submission's cgroup (a folder per controller hierarchy)."""

    version: int
    dirs: dict[str, Path]

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def oom_kills(self) -> int:
        text = _read(self.dirs["memory"] / ("memory.oom_control" if self.version == 1 else "memory.events")) \
            if "memory" in self.dirs else ""
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup (normally none: a run's pid namespace dies with its init)."""
        for _ in range(100):
            pids = {int(p) for d in dict.fromkeys(self.dirs.values()) for p in _read(d / "cgroup.procs").split()}
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for d in dict.fromkeys(self.dirs.values()):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.02)


class Cgroups:
    """The grading run's own cgroup folders (``gan-grader-PID`` under the grader's cgroups), in which each
    submission gets one with its limits; ``Cgroups.setup()`` returns None and why where that is impossible."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version, self.dirs = version, dirs
        self._n = 0
        self._lock = threading.Lock()

    @property
    def controllers(self) -> list[str]:
        return sorted(self.dirs)

    @classmethod
    def setup(cls, tag: str | None = None) -> tuple[Cgroups | None, str]:
        if os.geteuid() != 0:
            return None, "unavailable (not root)"
        tag = tag or f"gan-grader-{os.getpid()}"
        own, mounts = _own_cgroups()
        v1 = {c: m for c, m in mounts.items() if c != "unified"}
        wanted = ("cpu", "cpuacct", "memory", "pids")
        if {"cpu", "memory", "pids"} <= set(v1):
            dirs = {}
            for c in wanted:
                if c not in v1:
                    continue
                mount, mount_root = v1[c]
                path = own.get(c, "/")
                if not _under(path, mount_root):
                    continue
                d = Path(mount + path[len(mount_root.rstrip("/")):]) / tag
                _remove_stale(d.parent)
                try:
                    d.mkdir(exist_ok=True)
                except OSError as exc:
                    for made in dirs.values():
                        made.rmdir()
                    return None, f"unavailable (cannot create a cgroup under {d.parent}: {exc.strerror})"
                dirs[c] = d
            if {"cpu", "memory", "pids"} <= set(dirs):
                return cls(1, dirs), f"{', '.join(sorted(dirs))} (cgroup v1)"
            for made in dirs.values():
                made.rmdir()
            return None, "unavailable (the cgroup v1 hierarchy lacks cpu, memory or pids)"
        if "unified" in mounts:
            mount, mount_root = mounts["unified"]
            path = own.get("unified", "/")
            base = Path(mount + path[len(mount_root.rstrip("/")):])
            have = set(_read(base / "cgroup.controllers").split())
            if not {"cpu", "memory", "pids"} <= have:
                return None, f"unavailable (cgroup v2 at {base} offers only {' '.join(sorted(have)) or 'nothing'})"
            _remove_stale(base)
            try:
                _write(base / "cgroup.subtree_control", "+cpu +memory +pids")
                d = base / tag
                d.mkdir(exist_ok=True)
                _write(d / "cgroup.subtree_control", "+cpu +memory +pids")
            except OSError as exc:
                return None, f"unavailable (cgroup v2 at {base} is not delegated to the grader: {exc.strerror})"
            return cls(2, {"cpu": d, "memory": d, "pids": d}), "cpu, memory, pids (cgroup v2)"
        return None, "unavailable (no cgroup hierarchy with cpu, memory and pids)"

    def create(self, name: str, cpus: float, memory_mb: int, pids: int) -> Cgroup:
        """A cgroup for one submission with its CPU quota (in cores), memory limit and process limit."""
        with self._lock:
            self._n += 1
            leaf = f"{''.join(ch if ch.isalnum() else '_' for ch in name)[:40]}-{self._n}"
        dirs = {c: d / leaf for c, d in self.dirs.items()}
        group = Cgroup(self.version, dirs)
        for d in dict.fromkeys(dirs.values()):
            d.mkdir()
        quota, memory = int(cpus * 100_000), str(memory_mb * 2**20)
        try:
            if self.version == 1:
                _write(dirs["cpu"] / "cpu.cfs_period_us", "100000")
                _write(dirs["cpu"] / "cpu.cfs_quota_us", str(quota))
                _write(dirs["memory"] / "memory.limit_in_bytes", memory)
                if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
                    try:
                        _write(dirs["memory"] / "memory.memsw.limit_in_bytes", memory)
                    except OSError:
                        pass
                _write(dirs["pids"] / "pids.max", str(pids))
            else:
                _write(dirs["cpu"] / "cpu.max", f"{quota} 100000")
                _write(dirs["memory"] / "memory.max", memory)
                if (dirs["memory"] / "memory.swap.max").exists():
                    _write(dirs["memory"] / "memory.swap.max", "0")
                _write(dirs["pids"] / "pids.max", str(pids))
        except OSError:
            group.remove()
            raise
        return group

    def close(self) -> None:
        """Remove the run's cgroups (killing whatever is left in them)."""
        for d in dict.fromkeys(self.dirs.values()):
            for child in [p for p in d.iterdir() if p.is_dir()] if d.is_dir() else []:
                Cgroup(self.version, {"x": child}).remove()
        Cgroup(self.version, dict(self.dirs)).remove()


def _remove_stale(parent: Path) -> None:
    """Remove the cgroups of grading runs whose grader is gone (killed before it could clean up)."""
    try:
        stale = [d for d in parent.glob("gan-grader-*") if d.is_dir() and d.name[11:].isdigit()
                 and not Path(f"/proc/{d.name[11:]}").exists()]
    except OSError:
        return
    for d in stale:
        for child in [p for p in d.iterdir() if p.is_dir()]:
            Cgroup(1, {"x": child}).remove()
        Cgroup(1, {"x": d}).remove()


def _own_cgroups() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(controller -> this process's cgroup path, controller -> (mount point, mount root)); cgroup v2 is
    'unified'."""
    own: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else ["unified"]:
            own[c] = path
    mounts: dict[str, tuple[str, str]] = {}
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""
        root, point = fields[3], fields[4].replace("\\040", " ")
        if fstype == "cgroup":
            for c in options.split(","):
                mounts.setdefault(c, (point, root))
        elif fstype == "cgroup2":
            mounts.setdefault("unified", (point, root))
    return own, mounts


# --------------------------------------------------------------------------------------------------
# The warm template, and the runs


class SandboxError(RuntimeError):
    """A sandboxed run could not be started or reported on (the template or the keeper died, or stalled): an
    internal grader error, never blamed on (or cached for) the student."""


class TemplateError(SandboxError):
    """The warm template process could not be started or died."""


class Template:
    """The warm process (``sandbox_child.py serve``) that forks every sandboxed run of one grading run."""

    def __init__(self, runtime: Path, log: Path, notebook: bool, env: dict[str, str]) -> None:
        self.runtime, self.log_path, self.notebook, self.env = runtime, log, notebook, env
        self._lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.ready = False
        self.missing: list[str] = []
        self._spawn()

    def _spawn(self) -> None:
        """Start the template; it warms up (seconds) while the grader prepares the rest (``wait_ready``)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-I", str(self.runtime / "sandbox_child.py"), "serve", str(child.fileno())]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv + (["--notebook"] if self.notebook else []), pass_fds=(child.fileno(),),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.runtime, env=self.env, start_new_session=True)
        child.close()
        self.sock, self.ready = parent, False

    def wait_ready(self) -> None:
        """Block until the template has imported everything; TemplateError if it died instead."""
        if self.ready:
            return
        assert self.sock is not None and self.proc is not None
        self.sock.settimeout(300)
        try:
            msg = self.sock.recv(1 << 16)
        except OSError:
            msg = b""
        if not msg:
            self.proc.kill()
            self.proc.wait()
            raise TemplateError(f"the sandbox template did not start: {_tail(self.log_path, 1500)}")
        self.missing = json.loads(msg).get("missing", [])
        self.sock.settimeout(None)
        self.ready = True

    def start_run(self, cfg: dict, logs: list[Path]) -> socket.socket:
        """Ask for one run: returns the socket on which its keeper reports."""
        job, job_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600) for p in logs]
        try:
            with self._lock:
                if self.proc is not None and self.proc.poll() is not None:
                    self._spawn()  # it died (out of memory?): a fresh one for this and the next runs
                if self.proc is None:
                    raise TemplateError("the sandbox template was closed (grading was stopped)")
                self.wait_ready()
                socket.send_fds(self.sock, [json.dumps(cfg).encode()], [job_child.fileno(), *fds])
        except OSError as exc:
            job.close()
            raise TemplateError(f"the sandbox template is gone: {exc}") from exc
        except BaseException:
            job.close()
            raise
        finally:
            job_child.close()
            for fd in fds:
                os.close(fd)
        return job

    def close(self) -> None:
        """Close the control socket: the template exits, and every keeper and run it forked dies with it (their
        parent-death signal). Safe to call twice."""
        with self._lock:
            sock, proc, self.sock, self.proc = self.sock, self.proc, None, None
        if sock is not None:
            sock.close()
        if proc is not None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_report(job: socket.socket, backstop_s: float) -> dict:
    """The keeper's messages until its final report; if it does not come in time, kill the keeper (and with it,
    through the parent-death signal, the run)."""
    job.settimeout(60)
    report: dict = {}
    pidfd = None
    deadline = time.monotonic() + backstop_s
    try:
        while True:
            try:
                data = job.recv(1 << 16)
            except TimeoutError:
                data = None
            if data is None or time.monotonic() > deadline:
                if pidfd is not None:
                    try:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    except OSError:
                        pass
                report.update(status=None, error="its keeper did not report in time")
                return report
            if not data:
                report.setdefault("status", None)
                report.setdefault("error", "the sandbox keeper died")
                return report
            msg = json.loads(data)
            if "pid" in msg:
                try:
                    pidfd = os.pidfd_open(int(msg["pid"]))
                except (AttributeError, OSError):
                    pidfd = None
                job.settimeout(max(1.0, deadline - time.monotonic()))
            else:
                report.update(msg)
                if "status" in msg or "error" in msg:
                    return report
    finally:
        job.close()
        if pidfd is not None:
            os.close(pidfd)


def unreadable_by_others(paths: list[str]) -> list[str]:
    """The folders among ``paths`` and their parents that users other than their owner cannot enter and read."""
    bad = []
    for p in paths:
        for folder in [Path(p), *Path(p).parents]:
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if folder.is_dir() and mode & 0o005 != 0o005:
                bad.append(str(folder))
    return sorted(set(bad))


class Sandboxes:
    """What every sandboxed run of one grading run shares: the isolation level, the warm template, the cgroups,
    the limits and the secrets that no run may see."""

    def __init__(self, work: Path, runtime: Path, limits: Limits, secrets: list[Path], notebook: bool,
                 jobs: int = 1) -> None:
        self.work, self.runtime, self.limits, self.secrets = work, runtime, limits, secrets
        self.uids = all_uids(max(1, jobs))
        self.level = isolation()
        if self.level == "uid" and (bad := unreadable_by_others(list(python_paths()))):
            # without a mount namespace, the sandbox's own uids see the real file system: they must be able to
            # read Python (with namespaces the view shows it whatever the folders' modes)
            raise SandboxError(f"isolation 'uid' (root without namespaces) runs student code under unprivileged "
                               f"uids, which cannot read the Python installation: {', '.join(bad[:3])} "
                               "lacks o+rx. Install Python (or the venv) where other users can read it.")
        self.cgroups, self.cgroup_text = Cgroups.setup()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.cpus = limits.cpus or max(1.0, cores / max(1, jobs))
        self.view_root = work / "view-root"
        self.view_root.mkdir(mode=0o755, exist_ok=True)
        data = resolve_data_dir().resolve()
        self.data_dir = str(data) if data.is_dir() else ""
        self.base_env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                         "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                         "OPENBLAS_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
                         "TORCHDYNAMO_DISABLE": "1", **({DATA_DIR_ENV: self.data_dir} if self.data_dir else {})}
        mpl = work / "template-home"
        mpl.mkdir(exist_ok=True)
        self.template = Template(runtime, work / "template.log", notebook,
                                 {**self.base_env, "HOME": str(mpl), "MPLCONFIGDIR": str(mpl)})

    def describe(self) -> str:
        """The run's first line: the isolation level and the cgroups, with a warning when weaker than the best."""
        text = f"isolation: {self.level}"
        if self.level != "namespaces":
            text += " (WEAKER than namespaces: see instructor/README-grading.md)"
        text += f"; cgroups: {self.cgroup_text}"
        if self.cgroups is None:
            text += " (limits are per process only: a submission's processes together are not capped)"
        return text

    @contextmanager
    def submission(self, student: str) -> Iterator[Cgroup | None]:
        """The submission's cgroup (None where there are none) for as long as it is graded; then every process
        left in it is killed and it is removed."""
        group = None
        if self.cgroups is not None:
            group = self.cgroups.create(student, self.cpus, self.limits.cgroup_memory_mb, self.limits.nproc)
        try:
            yield group
        finally:
            if group is not None:
                group.remove()

    def run(self, mode: str, scratch: Path, log_dir: Path, slot: int, extra: dict, cgroup: Cgroup | None = None,
            env: dict[str, str] | None = None) -> RunResult:
        """One sandboxed run of ``mode`` ('module' or 'notebook') on ``scratch``; logs go to ``log_dir``, which the
        run cannot see."""
        level, limits = self.level, self.limits
        ids = uids(slot) if level in ("namespaces", "uid") else {"probe": None, "driver": None, "kernel": None}
        cfg = {"mode": mode, "level": level, "scratch": str(scratch), "limits": asdict(limits),
               "part_timeout_s": limits.part_timeout_s, "wall_s": limits.wall_s, "uid": ids["probe"],
               "uids": {"driver": ids["driver"], "kernel": ids["kernel"]},
               "env": {**self.base_env, "HOME": str(scratch), "TMPDIR": str(scratch / "tmp"), "USER": "student",
                       **(env or {})},
               "cgroup_procs": cgroup.procs_files() if cgroup else [], **extra}
        if level == "namespaces":
            cfg["view"] = view(self.view_root, scratch, self.runtime, self.secrets)
        logs = [log_dir / f"{mode}.stdout", log_dir / f"{mode}.stderr"]
        if mode == "notebook":
            logs.append(log_dir / "kernel.log")
        start = time.monotonic()
        job = self.template.start_run(cfg, logs)
        report = _wait_report(job, limits.wall_s + 60)
        status = report.get("status")
        if not isinstance(status, int):
            why = report.get("error") or "its keeper did not report in time"
            raise SandboxError(f"the sandboxed {mode} run failed: {why}; {_tail(logs[1], 300)}")
        code = os.waitstatus_to_exitcode(status)
        result = RunResult(code, bool(report.get("timed_out")), round(time.monotonic() - start, 3), _tail(logs[0]),
                           _tail(logs[1]), level, limits.wall_s, float(report.get("cpu_s", 0.0)))
        if cgroup is not None and code not in (0, None) and cgroup.oom_kills():
            result.oom = True
        return result

    def close(self) -> None:
        """Stop the template, wait until every sandboxed process is gone, and remove the cgroups."""
        self.template.close()
        _wait_until_gone(self.uids)
        if self.cgroups is not None:
            self.cgroups.close()


def _processes_of(uid_set: set[int]) -> list[str]:
    """The pids of the processes that run under one of ``uid_set`` (or have yet to be reaped)."""
    pids = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            if name.isdigit() and os.stat(f"/proc/{name}").st_uid in uid_set:
                pids.append(name)
        except OSError:  # gone meanwhile
            pass
    return pids


def _wait_until_gone(uid_set: set[int], timeout_s: float = 10.0) -> None:
    """Wait (at most ``timeout_s``) until no process runs under ``uid_set``. When the template exits, its keepers
    and their runs get their parent-death signal at once but take a moment to exit and be reaped; the grader says
    that every run has stopped only once they have."""
    deadline = time.monotonic() + timeout_s
    while _processes_of(uid_set) and time.monotonic() < deadline:
        time.sleep(0.02)


def copy_runtime(root: Path, runtime: Path) -> None:
    """The read-only runtime folder: the sandbox's own code, ``gan_utils`` and the public checks (never the
    hidden ones, never the solution)."""
    shutil.copytree(root / "gan_utils", runtime / "gan_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "gan-checks.npz", runtime / "gan-checks.npz")
    for name in RUNTIME_FILES:
        shutil.copy(Path(__file__).with_name(name), runtime / name)
    for folder, _dirs, files in os.walk(runtime):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
