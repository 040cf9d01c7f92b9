"""Train the small MNIST classifier that scores generated digits; writes gan_utils/mnist_classifier.pt.

    python tools/train_classifier.py [--epochs 4] [--out gan_utils/mnist_classifier.pt]

Deterministic (seed 0, given thread count); a few minutes on 2 CPU cores. Prints the test accuracy, which is
stored beside the weights, and refuses to write weights below --min-accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gan_utils.data import Batches, load_mnist  # noqa: E402
from gan_utils.evaluation import WEIGHTS_FILE, MNISTClassifier, save_classifier  # noqa: E402


def augment(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by a random whole number of pixels (up to ``max_shift`` each way), background -1."""
    n, size = len(x), x.shape[-1]
    padded = F.pad(x[:, 0], (max_shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=generator)
    rows = (dy + torch.arange(size))[:, :, None]
    cols = (dx + torch.arange(size))[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model: MNISTClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(images.split(1000), labels.split(1000)))
    return correct / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-accuracy", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)  # the shifts of the augmentation
    images, labels = load_mnist(train=True)
    test_images, test_labels = load_mnist(train=False)

    model = MNISTClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = Batches(torch.arange(len(images)), args.batch_size, seed=0)  # shuffled image indices
    steps = args.epochs * order.per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    start = time.perf_counter()
    with tqdm(total=steps, desc="classifier") as bar:
        for _ in range(args.epochs):
            model.train()
            for _ in range(order.per_epoch):
                idx = next(order)
                loss = F.cross_entropy(model(augment(images[idx], generator)), labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
            bar.set_postfix(loss=f"{float(loss):.3f}", test_acc=f"{accuracy(model, test_images, test_labels):.4f}")
    test_acc = accuracy(model, test_images, test_labels)
    print(f"test accuracy {test_acc:.4f} after {args.epochs} epochs ({time.perf_counter() - start:.0f} s)")
    if test_acc < args.min_accuracy:
        sys.exit(f"test accuracy {test_acc:.4f} is below --min-accuracy {args.min_accuracy}; weights not written")
    save_classifier(model, test_acc, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
