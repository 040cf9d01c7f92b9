"""Finding the submissions in a folder: one folder or LMS zip per student, unpacked safely, with unique ids.

Whatever an entry holds (a damaged or encrypted zip, an unsupported compression method, a path 1200 folders deep,
unreadable files, a name that is not a usable id), it becomes one ``Submission``: graded, or carrying the reason
why it cannot be; it never stops the discovery of the others.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MAX_ZIP_BYTES = 200 * 2**20
MAX_ZIP_ENTRIES = 5000
MAX_DEPTH = 32
MAX_FOLDER_BYTES = 500 * 2**20


@dataclass
class Submission:
    """One student's files, unpacked; ``error`` says why nothing could be graded, ``notes`` what else the
    instructor should know (a renamed id)."""

    student: str
    folder: Path | None
    digest: str
    error: str = ""
    notes: list[str] = field(default_factory=list)

    def find(self, name: str) -> Path | None:
        """The shallowest file called ``name`` (zips often wrap everything in one folder)."""
        if self.folder is None:
            return None
        found = [p for p in self.folder.rglob(name) if _regular_inside(p, self.folder) and "__MACOSX" not in p.parts]
        return min(found, key=lambda p: (len(p.parts), str(p))) if found else None

    def find_notebook(self, name: str) -> Path | None:
        exact = self.find(name)
        if exact is not None or self.folder is None:
            return exact
        others = [p for p in self.folder.rglob("*.ipynb")
                  if _regular_inside(p, self.folder) and ".ipynb_checkpoints" not in p.parts
                  and "__MACOSX" not in p.parts]
        return others[0] if len(others) == 1 else None


def _regular_inside(path: Path, folder: Path) -> bool:
    """A regular file really inside ``folder``: a symlink could point at the solution or the hidden checks."""
    return path.is_file() and not path.is_symlink() and folder.resolve() in path.resolve().parents


def _digest_folder(folder: Path) -> str:
    h = hashlib.sha256()
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        total += path.stat().st_size
        if total > MAX_FOLDER_BYTES:
            raise ValueError(f"holds more than {MAX_FOLDER_BYTES // 2**20} MB")
        h.update(str(path.relative_to(folder)).encode("utf-8", "backslashreplace") + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _unzip(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``; ValueError for anything that is not a plain, sane archive. Other errors
    (damaged data, encryption, unknown compression) propagate: the caller turns every exception into a reason."""
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise ValueError(f"holds more than {MAX_ZIP_ENTRIES} entries")
        if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise ValueError(f"unpacks to more than {MAX_ZIP_BYTES // 2**20} MB")
        written = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
            if not parts or name.startswith("/") or ".." in parts or ":" in parts[0]:
                if info.is_dir() and not parts:
                    continue
                raise ValueError(f"holds a path outside the archive: {info.filename[:200]!r}")
            if len(parts) > MAX_DEPTH:
                raise ValueError(f"holds a path more than {MAX_DEPTH} folders deep")
            if info.flag_bits & 0x1:
                raise ValueError(f"is encrypted ({info.filename[:200]!r}); upload it without a password")
            target = dest.joinpath(*parts)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(target.parent, exist_ok=True)
            with z.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > MAX_ZIP_BYTES:
                        raise ValueError(f"unpacks to more than {MAX_ZIP_BYTES // 2**20} MB")
                    out.write(chunk)


def student_of(entry: Path) -> str:
    """The student id: the folder name, or the zip name up to its first ``_`` (``alice_1234_GAN.zip`` -> alice)."""
    return entry.name if entry.is_dir() else entry.stem.split("_")[0]


def sanitised(name: str) -> str:
    """A usable id made from an unusable one (``honest b`` -> ``honest_b``)."""
    clean = re.sub(r"[^A-Za-z0-9._@-]", "_", name)[:90].lstrip("._-@")
    return clean or "unnamed"


def _describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:300]


def discover(submissions: Path, unpack_to: Path) -> list[Submission]:
    """One Submission per student folder or ``<student>[_anything].zip`` in ``submissions``, with unique ids.

    An entry whose name is not a usable id is graded under a sanitised one (made unique with ``-2``, ``-3``... if
    another student has it), and says so in its notes.
    """
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of submissions")
    entries = [e for e in sorted(submissions.iterdir()) if not e.name.startswith(".")
               and (e.is_dir() or (e.suffix == ".zip" and e.is_file())) and not e.is_symlink()]
    wanted = {e: student_of(e) for e in entries}
    taken: dict[str, list[Path]] = {}
    for entry, student in wanted.items():
        if STUDENT_ID.match(student):
            taken.setdefault(student, []).append(entry)
    ids: dict[Path, tuple[str, list[str]]] = {}
    for entry, student in wanted.items():
        if STUDENT_ID.match(student):
            ids[entry] = (student, [])
            continue
        base = sanitised(student)
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        taken[name] = [entry]
        ids[entry] = (name, [f"{entry.name!r} is not a usable student id (letters, digits, ._@-): graded as "
                             f"{name!r}" + (f" ({base!r} is another student's)" if k > 1 else "")])
    found: dict[str, Submission] = {}
    for entry in entries:
        student, notes = ids[entry]
        if student in found:
            others = ", ".join(e.name for e in taken[student])
            found[student] = Submission(student, None, "", f"several submissions for {student} ({others}); keep "
                                                           "one and grade again", notes)
            continue
        try:
            if entry.is_dir():
                found[student] = Submission(student, entry, _digest_folder(entry), notes=notes)
                continue
            digest = hashlib.sha256(entry.read_bytes()).hexdigest()
        except Exception as exc:  # unreadable files, a folder too large...: this student only
            found[student] = Submission(student, None, "", f"{entry.name} cannot be read: {_describe(exc)}", notes)
            continue
        folder = unpack_to / student
        try:
            _unzip(entry, folder)
            found[student] = Submission(student, folder, digest, notes=notes)
        except Exception as exc:  # BadZipFile, zlib.error, RuntimeError, NotImplementedError, RecursionError...
            found[student] = Submission(student, None, digest, f"{entry.name} cannot be unpacked: {_describe(exc)}",
                                        notes)
    return list(found.values())
