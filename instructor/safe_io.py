"""Reading what a sandbox could have written, without following it anywhere or blocking on it.

A sandbox owns its scratch folder: it can replace any file there with a symlink (to a classmate's notebook, to the
hidden checks), a FIFO (a plain ``open`` blocks forever, even through SIGINT), a device, a directory or a huge
file, and it can do the same to any folder on the way. The grader runs as root, so it must not trust a single path
component below the folder it created itself. ``read_regular`` walks from that trusted folder one component at a
time with ``O_NOFOLLOW``, opens the last one with ``O_NONBLOCK``, and reads only a regular file of bounded size;
anything else raises ``UnsafeFile`` with a reason that can be shown to the student.

``clean_text`` makes text from a sandbox safe to write anywhere: no lone surrogates (which crash UTF-8 encoding),
no control characters (terminal escapes in the instructor's log).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class UnsafeFile(OSError):
    """A file written by a sandbox that the grader refuses to read (missing, not a regular file, too large)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(root: Path, relative: str | os.PathLike, owner: int | None) -> tuple[int, os.stat_result, str]:
    """An open file descriptor of the regular file ``root/relative`` (reached as ``read_regular`` says), its stat
    (checked to be the file that was opened) and its name for messages."""
    parts = [p for p in Path(relative).parts if p not in ("", ".")]
    if not parts or any(p in ("..", "/") for p in parts):
        raise ValueError(f"not a plain relative path: {relative}")
    name = "/".join(parts)
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise UnsafeFile(f"{root} cannot be opened ({exc.strerror})") from None
    try:
        for part in parts[:-1]:
            try:
                st = os.lstat(part, dir_fd=fd)
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafeFile(f"{name}: {part} is {_kind(st.st_mode)}, not a folder")
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise UnsafeFile(f"{name} is missing") from None
            except UnsafeFile:
                raise
            except OSError as exc:
                raise UnsafeFile(f"{name}: {part} cannot be opened ({exc.strerror})") from None
            os.close(fd)
            fd = nxt
        try:
            st = os.lstat(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            raise UnsafeFile(f"{name} is missing") from None
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{name} is {_kind(st.st_mode)}, not a regular file")
        if owner is not None and st.st_uid != owner:
            raise UnsafeFile(f"{name} was not written by the process that should have written it")
        try:
            ffd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            raise UnsafeFile(f"{name} cannot be opened ({exc.strerror})") from None
    finally:
        os.close(fd)
    try:
        st2 = os.fstat(ffd)  # the same file that lstat saw (not swapped in between)
        if not stat.S_ISREG(st2.st_mode) or (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            raise UnsafeFile(f"{name} changed while it was being read")
    except BaseException:
        os.close(ffd)
        raise
    return ffd, st2, name


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular(root: Path, relative: str | os.PathLike, limit: int, owner: int | None = None) -> bytes:
    """The bytes of ``root/relative``, which must be a regular file of at most ``limit`` bytes, reached without
    following any symlink below ``root`` (``root`` itself is trusted: the grader made it). With ``owner``, the file
    must also belong to that uid (the sandbox process that was meant to write it, not another one).

    Raises ``UnsafeFile`` (an ``OSError``) saying what is wrong.
    """
    fd, st, name = _open_regular(root, relative, owner)
    try:
        if st.st_size > limit:
            raise UnsafeFile(f"{name} is larger than {limit} bytes")
        data = _read_at_most(fd, limit + 1)
        if len(data) > limit:
            raise UnsafeFile(f"{name} is larger than {limit} bytes")
        return data
    finally:
        os.close(fd)


def read_tail(root: Path, relative: str | os.PathLike, n: int) -> bytes:
    """The last ``n`` bytes (at most) of the regular file ``root/relative``, reached as ``read_regular`` does (no
    symlink followed, no FIFO or device blocked on): for logs, which may be large. Raises ``UnsafeFile``."""
    fd, st, _name = _open_regular(root, relative, None)
    try:
        os.lseek(fd, max(0, st.st_size - n), os.SEEK_SET)
        return _read_at_most(fd, n)
    finally:
        os.close(fd)


def read_text(root: Path, relative: str | os.PathLike, limit: int, default: str = "") -> str:
    """``read_regular`` decoded as UTF-8 (errors replaced) and cleaned; ``default`` if it cannot be read safely."""
    try:
        return clean_text(read_regular(root, relative, limit).decode("utf-8", "replace"))
    except OSError:
        return default


def clean_text(text: object, limit: int | None = None) -> str:
    """``text`` as a str that any encoder accepts: lone surrogates escaped, control characters (but newlines and
    tabs) replaced by a space, and at most ``limit`` characters."""
    s = text if isinstance(text, str) else str(text)
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    s = _CONTROL.sub(" ", s)
    return s if limit is None else s[:limit]
