"""Scoring generated MNIST digits with the project's own small classifier.

The classifier (``MNISTClassifier``, weights in ``mnist_classifier.pt``, made by ``tools/train_classifier.py``)
gives three numbers per generator:

- the Frechet distance (FD) between Gaussians fitted to its penultimate-layer features of generated images and
  of the MNIST test set (FID's formula on a small MNIST network instead of Inception; lower is better);
- class coverage: the share of samples it assigns to each digit (a mode-collapsed model misses digits);
- mean confidence: its mean top-class probability (blurry or malformed digits get low confidence).

``real_data_floor()`` is the FD of real training images against the test set: the best a model can hope for.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import nn

import gan_pytorch as gp
from gan_utils.data import load_mnist
from gan_utils.files import atomic_path
from gan_utils.models import sample

WEIGHTS_FILE = Path(__file__).resolve().parent / "mnist_classifier.pt"
EVAL_SAMPLES = 10_000


class MNISTClassifier(nn.Module):
    """Two small conv blocks and a hidden layer of ``FEATURE_DIM`` units (~157k parameters), which ``features``
    returns.

    Kept small (about 1.2M multiply-adds per image) so that scoring 50 000 images takes seconds on a CPU.
    """

    FEATURE_DIM = 96

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, self.FEATURE_DIM), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(self.FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 784) or (N, 1, 28, 28) images in [-1, 1] -> (N, FEATURE_DIM) features."""
        return self.body(x.reshape(len(x), 784))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> (N, 10) class logits."""
        return self.head(self.dropout(self.features(x)))


def save_classifier(model: MNISTClassifier, test_accuracy: float, path: str | Path = WEIGHTS_FILE) -> None:
    """Write the weights (as float16, to keep the committed file small) and the test accuracy, atomically."""
    path = Path(path)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "test_accuracy": float(test_accuracy)}, tmp)


@lru_cache(maxsize=2)
def _load(path: Path) -> tuple[MNISTClassifier, float]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python tools/train_classifier.py` to make it.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = MNISTClassifier()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()})
    model.eval().requires_grad_(False)
    return model, float(checkpoint["test_accuracy"])


def load_classifier(path: str | Path = WEIGHTS_FILE) -> MNISTClassifier:
    """The trained classifier, in eval mode on the CPU (loaded once per process)."""
    return _load(Path(path).resolve())[0]


def classifier_accuracy(path: str | Path = WEIGHTS_FILE) -> float:
    """The classifier's MNIST test accuracy, as measured by the script that trained it."""
    return _load(Path(path).resolve())[1]


@torch.no_grad()
def classify(images: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, FEATURE_DIM) float64 and class probabilities (N, 10) float64 for images in [-1, 1]."""
    model = load_classifier()
    feats, probs = [], []
    for batch in images.detach().float().cpu().split(batch_size):
        f = model.features(batch)
        feats.append(f)
        probs.append(torch.softmax(model.head(f), dim=1))
    return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


def features(images: torch.Tensor) -> np.ndarray:
    """The classifier's penultimate-layer features, (N, FEATURE_DIM) float64."""
    return classify(images)[0]


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets of shape (N, D):

        |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))
    """
    feat_a, feat_b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    if feat_a.ndim != 2 or feat_b.ndim != 2 or feat_a.shape[1] != feat_b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays with the same D, got {feat_a.shape} and {feat_b.shape}")
    if min(len(feat_a), len(feat_b)) < 2:
        raise ValueError("need at least 2 samples per feature set to estimate a covariance")
    if not (np.isfinite(feat_a).all() and np.isfinite(feat_b).all()):
        raise ValueError("features contain NaN or inf (did the generator diverge?)")
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    cov_a, cov_b = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if caught or not np.isfinite(covmean).all():
        # A singular product (dead ReLU features, collapsed samples): nudge both covariances off singularity,
        # as the reference FID code does; the offset is far below the distances that matter.
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    # sqrtm of a product of PSD matrices is real up to round-off; a large imaginary part means a real problem.
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean).max())):
            raise ValueError(f"matrix square root has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    if not math.isfinite(fd):
        raise ValueError("Frechet distance is not finite")
    return max(fd, 0.0)


@lru_cache(maxsize=1)
def _test_features() -> np.ndarray:
    return features(load_mnist(train=False)[0])


def real_data_floor(n: int = EVAL_SAMPLES, seed: int = 0) -> dict[str, float]:
    """The same scores for ``n`` real MNIST training images: the floor a perfect generator would reach."""
    images = load_mnist(train=True)[0]
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return score_images(images[pick])


def score_images(images: torch.Tensor) -> dict[str, float]:
    """FD against the MNIST test set, smallest class share, number of classes with >= 5 %, mean confidence."""
    feats, probs = classify(images)
    shares = np.bincount(probs.argmax(1), minlength=10) / len(probs)
    return {
        "fd": frechet_distance(feats, _test_features()),
        "min_class_share": float(shares.min()),
        "classes_5pct": int((shares >= 0.05).sum()),
        "mean_confidence": float(probs.max(1).mean()),
        "class_shares": shares.tolist(),
    }


def evaluate_generator(G: nn.Module, n: int = EVAL_SAMPLES, noise_dim: int = gp.NOISE_DIM, seed: int = 0
                       ) -> dict[str, float]:
    """Score ``n`` samples of G (in eval mode, on fixed noise): fd, min_class_share, classes_5pct, mean_confidence,
    class_shares."""
    return score_images(sample(G, gp.sample_noise(n, noise_dim, seed=seed)))


def evaluation_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table, one row per model (e.g. {"vanilla GAN": evaluate_generator(G), ...})."""
    header = f"{'model':<22}{'FD (lower=better)':>18}{'classes >= 5%':>15}{'min class share':>17}{'mean conf.':>12}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        lines.append(f"{name:<22}{r['fd']:>18.2f}{r['classes_5pct']:>12d}/10{r['min_class_share']:>17.3f}"
                     f"{r['mean_confidence']:>12.3f}")
    return "\n".join(lines)
