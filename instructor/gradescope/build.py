"""Build the Gradescope autograder zip: ``setup.sh``, ``run_autograder`` and the grader's source files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from gan_utils.files import atomic_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# the grader and what it needs; never the solution gan_pytorch.py (the grader does not use it)
FILES = ("gan-checks.npz", "requirements.txt", "instructor/requirements.txt", "instructor/hidden-checks.npz")
PACKAGES = ("gan_utils", "instructor")


def bundle_files(notebook: Path | None) -> dict[str, Path]:
    """Archive name -> file on disk."""
    files = {"setup.sh": HERE / "setup.sh", "run_autograder": HERE / "run_autograder"}
    for rel in FILES:
        files[rel] = ROOT / rel
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".npz", ".sh", ".md", "",
                                                                                       ".txt"):
                files.setdefault(str(path.relative_to(ROOT)), path)
    if notebook is not None:
        files["GAN.ipynb"] = notebook
    return files


def build_bundle(out: Path, notebook: Path | None = None) -> Path:
    """Write the zip atomically; executables keep their mode."""
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, path in bundle_files(notebook).items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes())
    return out
