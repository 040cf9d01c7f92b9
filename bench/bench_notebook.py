"""Run GAN.ipynb top to bottom, headless, as a student would, and print the wall time of each section.

    python bench/bench_notebook.py                 # full run (the solution version, default settings)
    python bench/bench_notebook.py --smoke         # GAN_SMOKE=1: every training cut to a few iterations
    python bench/bench_notebook.py --out run.ipynb # keep the executed notebook
    python bench/bench_notebook.py --no_bf16       # GAN_BF16=0: float32 even where bfloat16 is supported

Also prints what the notebook measured: the toy tables (collapse, the stalled saturating loss, the remedy) and the
MNIST evaluation table, with the date and the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from cli.args import positive_int  # noqa: E402
from gan_utils import env  # noqa: E402


def seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def section_times(nb) -> dict[str, float]:
    """Seconds per '## ' section, summed over its code cells."""
    times: dict[str, float] = {}
    section = "(top)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    section = line[3:].strip()
        elif cell.cell_type == "code":
            times[section] = times.get(section, 0.0) + seconds(cell)
    return times


def outputs_of(nb, grade_id: str) -> str:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            parts = []
            for o in cell.outputs:
                if o.output_type == "stream":
                    parts.append(o.text)
                elif o.output_type in ("display_data", "execute_result") and "text/markdown" in o.get("data", {}):
                    parts.append(o.data["text/markdown"] + "\n")
                elif o.output_type == "error":
                    parts.append(f"{o.ename}: {o.evalue}\n")
            return "".join(parts)
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="set GAN_SMOKE=1")
    parser.add_argument("--no_bf16", action="store_true",
                        help="set GAN_BF16=0: the MNIST GANs train in float32, as on a CPU without bfloat16")
    parser.add_argument("--out", type=Path, help="write the executed notebook here")
    parser.add_argument("--timeout", type=positive_int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args()
    if args.smoke:
        os.environ["GAN_SMOKE"] = "1"
    if args.no_bf16:
        os.environ["GAN_BF16"] = "0"
    try:  # the kernel inherits this environment: a bad GAN_BF16 or GAN_THREADS would stop it at its first cells
        bf16 = env.use_bfloat16("cpu")
        env.requested_threads()
    except ValueError as error:
        parser.error(str(error))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)  # a copy, so that the run's images do not land in the repository
        for name in ("GAN.ipynb", "gan_pytorch.py", "gan-checks.npz"):
            shutil.copy(ROOT / name, folder / name)
        shutil.copytree(ROOT / "gan_utils", folder / "gan_utils", ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "images").mkdir()
        os.environ["PYTHONPATH"] = str(folder)
        nb = nbformat.read(folder / "GAN.ipynb", as_version=4)
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(folder)}})
        start = time.perf_counter()
        client.execute()
        total = time.perf_counter() - start
        images = sorted(p.name for p in (folder / "images").iterdir())
    if args.out:
        nbformat.write(nb, args.out)

    print(f"GAN.ipynb, {'smoke' if args.smoke else 'full'} run, {machine.header()}, python {sys.version.split()[0]}, "
          f"bfloat16 {'on' if bf16 else 'off'}")
    print(f"{'section':<50}{'seconds':>10}")
    for name, secs in section_times(nb).items():
        print(f"{name[:49]:<50}{secs:>10.1f}")
    print(f"{'total (kernel start to last cell)':<50}{total:>10.1f}")
    print(f"\nimages written: {len(images)}")
    for grade_id in ("toy_baseline", "toy_losses", "toy_remedy"):
        print(f"\nToy 2D ({grade_id}):")
        print(outputs_of(nb, grade_id).strip())
    print("\nMNIST evaluation (Part 7):")
    print(outputs_of(nb, "evaluate").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
