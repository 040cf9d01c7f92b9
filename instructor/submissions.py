"""Finding the submissions in a folder: one folder or LMS zip per student, unpacked safely."""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MAX_ZIP_BYTES = 200 * 2**20


@dataclass
class Submission:
    """One student's files, unpacked; ``error`` says why nothing could be graded."""

    student: str
    folder: Path | None
    digest: str
    error: str = ""

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
                  if _regular_inside(p, self.folder) and ".ipynb_checkpoints" not in p.parts]
        return others[0] if len(others) == 1 else None


def _regular_inside(path: Path, folder: Path) -> bool:
    """A regular file really inside ``folder``: a symlink could point at the solution or the hidden checks."""
    return path.is_file() and not path.is_symlink() and folder.resolve() in path.resolve().parents


def _digest_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise ValueError(f"unpacks to more than {MAX_ZIP_BYTES // 2**20} MB")
        for info in infos:
            target = (dest / info.filename).resolve()
            if dest.resolve() not in target.parents:
                raise ValueError(f"holds a path outside the archive: {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)


def student_of(entry: Path) -> str:
    """The student id: the folder name, or the zip name up to its first ``_`` (``alice_1234_GAN.zip`` -> alice)."""
    return entry.name if entry.is_dir() else entry.stem.split("_")[0]


def discover(submissions: Path, unpack_to: Path) -> list[Submission]:
    """One Submission per student folder or ``<student>[_anything].zip`` in ``submissions``."""
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of submissions")
    found: dict[str, Submission] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix == ".zip"):
            continue
        student = student_of(entry)
        if not STUDENT_ID.match(student):
            found[entry.name] = Submission(re.sub(r"[^A-Za-z0-9._-]", "_", entry.name)[:100] or "unnamed", None, "",
                                           f"{entry.name!r} is not a usable student id (letters, digits, ._@-)")
            continue
        if student in found:
            found[student].error = f"two submissions for {student} ({entry.name} and another); keep one"
            continue
        if entry.is_dir():
            found[student] = Submission(student, entry, _digest_folder(entry))
            continue
        digest = hashlib.sha256(entry.read_bytes()).hexdigest()
        folder = unpack_to / student
        try:
            _unzip(entry, folder)
            found[student] = Submission(student, folder, digest)
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            found[student] = Submission(student, None, digest, f"{entry.name} cannot be unpacked: {exc}")
    return list(found.values())
