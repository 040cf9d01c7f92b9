"""Notebook mode of the sandbox: ``nbgrader autograde`` and the student's kernel under two different uids.

Runs inside the isolated process tree of ``sandbox_child.py`` (new root, no network but loopback, rlimits, the
submission's cgroup). The init process stays root but runs no student code; it forks two unprivileged children:

- the **kernel** (``kernel`` uid): forked *now* from the warm template (torch, IPython, ipykernel and gan_utils
  already imported), it waits until nbgrader asks for a kernel, then starts ``IPKernelApp`` with nbgrader's
  connection info, in the notebook's folder. This is the only process that runs student code.
- the **driver** (``driver`` uid): runs ``nbgrader autograde`` in-process (the same code as the command line; its
  exit status is nbgrader's), with a kernel manager that asks the init for the kernel instead of starting
  ``python -m ipykernel_launcher``. When nbgrader is done it copies the autograded notebook and writes
  ``result.json`` (exit status and nbgrader's error messages) into its own folder (mode 700).

The kernel cannot signal, trace or write anything of the driver: another uid. It cannot read the gradebook
(mode 600), the course's source or the submitted copy (mode 700), and it cannot write the autograded notebook or
its folder (the driver's, mode 755). So the autograded notebook that the grader reads is what nbgrader wrote from
the kernel's replies, or nothing: a kernel that kills itself or hangs leaves a non-zero exit status and no
``result.json``, never an unexecuted notebook read as executed. The init only relays, for the driver, the three
signals a kernel manager sends (interrupt, terminate, kill) to the kernel's process group, and tells the driver
when the kernel has ended.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import sys
import traceback

from sandbox_child import drop_privileges, set_environment

RELAYED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGKILL}
RESULT = "result.json"
AUTOGRADED = "autograded.ipynb"
MAX_NOTEBOOK_BYTES = 80 * 2**20


def _send(sock: socket.socket, **fields: object) -> None:
    sock.send(json.dumps(fields).encode())


# --------------------------------------------------------------------------------------------------
# The init: supervisor of the driver and the kernel


def supervise(cfg: dict, kernel_log_fd: int | None) -> int:
    """Fork the kernel and the driver, relay between them, and end with the driver's exit status."""
    uids = cfg["uids"]
    k_sup, k_kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    d_sup, d_driver = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    kernel_pid = os.fork()
    if kernel_pid == 0:
        code = 1
        try:
            for s in (k_sup, d_sup, d_driver):
                s.close()
            if kernel_log_fd is not None:
                os.dup2(kernel_log_fd, 1)
                os.dup2(kernel_log_fd, 2)
                os.close(kernel_log_fd)
            os.setsid()
            if uids["kernel"] is not None:  # None at the 'rlimits' level (not root): no uid to drop to
                drop_privileges(uids["kernel"])
            code = kernel_main(cfg, k_kernel)
        finally:
            os._exit(code)
    driver_pid = os.fork()
    if driver_pid == 0:
        code = 1
        try:
            for s in (k_sup, k_kernel, d_sup):
                s.close()
            if kernel_log_fd is not None:
                os.close(kernel_log_fd)
            if uids["driver"] is not None:
                drop_privileges(uids["driver"])
            code = driver_main(cfg, d_driver)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    k_kernel.close()
    d_driver.close()
    if kernel_log_fd is not None:
        os.close(kernel_log_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    kernel_started = False
    while True:
        try:
            ready = select.select([d_sup, wake_r], [], [], 1.0)[0]
        except InterruptedError:
            ready = []
        if wake_r in ready:
            os.read(wake_r, 512)
        if d_sup in ready:
            try:
                msg = json.loads(d_sup.recv(1 << 20) or b"{}")
            except (OSError, ValueError):
                msg = {}
            if "start" in msg and not kernel_started:
                kernel_started = True
                try:
                    k_sup.send(json.dumps(msg["start"]).encode())
                except OSError:
                    pass
                _send(d_sup, started=kernel_pid)
            elif msg.get("signal") in RELAYED_SIGNALS:
                try:
                    os.killpg(kernel_pid, msg["signal"])
                except (ProcessLookupError, PermissionError):
                    pass
        while True:  # as pid 1, reap every orphan too
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == kernel_pid:
                try:
                    _send(d_sup, exited=status)
                except OSError:
                    pass
            elif pid == driver_pid:
                try:
                    os.killpg(kernel_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


# --------------------------------------------------------------------------------------------------
# The kernel


def kernel_main(cfg: dict, channel: socket.socket) -> int:
    """Wait for nbgrader's request, then become its IPython kernel (in this warm process: no new interpreter)."""
    try:
        request = json.loads(channel.recv(1 << 20) or b"null")
    except (OSError, ValueError):
        request = None
    channel.close()
    if not isinstance(request, dict):
        return 0  # nbgrader never asked for a kernel (it refused the notebook first)
    home = cfg["kernel_home"]
    connection_file = os.path.join(home, "kernel.json")
    fd = os.open(connection_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(request["connection"], f)
    env = {k: v for k, v in request.get("env", {}).items() if isinstance(k, str) and isinstance(v, str)}
    env.pop("JPY_PARENT_PID", None)  # its parent is the init, not the driver: the kernel would stop at once
    env.update(cfg["kernel_env"])
    set_environment(env)
    os.chdir(request["cwd"])
    sys.path.insert(0, os.getcwd())  # as ``python -m ipykernel_launcher`` would: the notebook's folder first
    args = [a for a in request.get("args", []) if isinstance(a, str) and a.startswith("--") and "=" in a]
    sys.argv = ["ipykernel_launcher", "-f", connection_file, *args]
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # ipykernel redirects the real descriptors
    from ipykernel.kernelapp import IPKernelApp  # noqa: PLC0415 - warm already

    try:
        IPKernelApp.launch_instance(argv=sys.argv[1:])
    except BaseException:  # noqa: BLE001 - into the kernel's log, which only the instructor reads
        os.write(2, traceback.format_exc().encode(errors="replace"))
        return 1
    return 0


# --------------------------------------------------------------------------------------------------
# The driver


class _Collect(logging.Handler):
    """Keeps nbgrader's warnings and errors: the reason passed to the student when nbgrader refuses a notebook."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.levelname}: {record.getMessage()}"[:4000])
        except Exception:  # noqa: BLE001 - a log line must never stop grading
            pass


class KernelProcess:
    """What jupyter_client's LocalProvisioner expects of a ``Popen``, for a kernel that the init started."""

    stdin = stdout = stderr = None

    def __init__(self, channel: socket.socket, request: dict) -> None:
        self.channel = channel
        self.returncode: int | None = None
        _send(channel, start=request)
        self.pid = int(self._recv(block=True).get("started", 0))

    def _recv(self, block: bool) -> dict:
        self.channel.setblocking(block)
        try:
            data = self.channel.recv(1 << 16)
        except BlockingIOError:
            return {}
        finally:
            self.channel.setblocking(True)
        if not data:  # the init is gone: so is the kernel
            self.returncode = -signal.SIGKILL if self.returncode is None else self.returncode
            return {}
        msg = json.loads(data)
        if "exited" in msg:
            self.returncode = os.waitstatus_to_exitcode(int(msg["exited"]))
        return msg

    def poll(self) -> int | None:
        while self.returncode is None and self._recv(block=False):
            pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        while self.returncode is None:
            self._recv(block=True)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            _send(self.channel, signal=int(signum))

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def kernel_manager_class(channel: socket.socket) -> type:
    """An ``AsyncKernelManager`` whose kernel is started by the init (see the module docstring)."""
    from jupyter_client.manager import AsyncKernelManager  # noqa: PLC0415

    class SandboxKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: object) -> None:
            prov = self.provisioner
            info = prov.connection_info
            connection = {k: v.decode() if isinstance(v, bytes) else v for k, v in info.items()}
            args = kernel_cmd[kernel_cmd.index("-f") + 2:] if "-f" in kernel_cmd else []
            cwd = str(kw.get("cwd") or os.getcwd())
            env = {k: v for k, v in dict(kw.get("env") or {}).items() if isinstance(v, str)}
            proc = KernelProcess(channel, {"connection": connection, "cwd": cwd, "env": env, "args": args})
            prov.process, prov.pid, prov.pgid, prov.cwd = proc, proc.pid, None, cwd
            self._reconcile_connection_info(info)

    return SandboxKernelManager


def _autograded_copy(cfg: dict) -> bytes | None:
    """The notebook nbgrader wrote, if it is a regular file of this uid (nothing else can have written there)."""
    path = os.path.join(cfg["course"], "autograded", cfg["student"], cfg["assignment"], cfg["notebook_name"])
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not (st.st_mode & 0o170000 == 0o100000 and st.st_uid == os.getuid() and st.st_size <= MAX_NOTEBOOK_BYTES):
            return None
        return f.read(MAX_NOTEBOOK_BYTES + 1)


def driver_main(cfg: dict, channel: socket.socket) -> int:
    """``nbgrader autograde ASSIGNMENT --student S --force`` in this process; returns its exit status."""
    os.umask(0o022)
    set_environment({**os.environ, **cfg["driver_env"]})
    os.chdir(cfg["course"])
    import nbgrader.preprocessors.execute as execute  # noqa: PLC0415 - warm already
    from nbgrader.apps.nbgraderapp import NbGraderApp  # noqa: PLC0415

    execute.AsyncKernelManager = kernel_manager_class(channel)  # nbgrader's Execute defaults to this name
    collect = _Collect()
    from jupyter_core.application import NoStart  # noqa: PLC0415
    from jupyter_core.utils import ensure_event_loop  # noqa: PLC0415

    code = 1
    try:
        ensure_event_loop()  # as NbGraderApp.launch_instance does, which is what the command line runs
        app = NbGraderApp.instance()
        app.initialize(["autograde", cfg["assignment"], "--student", cfg["student"], "--force", "--log-level=WARN"])
        # after initialize: traitlets configures the apps' loggers there, replacing their handlers
        for log in {id(x): x for x in (app.log, getattr(app.subapp, "log", None), logging.getLogger("traitlets"))
                    if isinstance(x, logging.Logger)}.values():
            log.addHandler(collect)
        app.start()
        code = 0
    except NoStart:  # how a Jupyter app says that its subcommand ran to the end
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - anything nbgrader raises is its failure, reported below
        collect.lines.append(f"ERROR: {type(exc).__name__}: {exc}"[:4000])
        traceback.print_exc()
    notebook = _autograded_copy(cfg) if code == 0 else None
    out = cfg["driver_home"]
    if notebook is not None:
        with open(os.path.join(out, AUTOGRADED), "wb") as f:
            f.write(notebook)
    elif code == 0:
        code = 1
        collect.lines.append("ERROR: nbgrader reported success but wrote no autograded notebook")
    with open(os.path.join(out, RESULT), "w") as f:
        json.dump({"exit": code, "log": collect.lines[-40:]}, f)
    return code
