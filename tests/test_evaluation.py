"""The MNIST classifier and the scores built on it (Frechet distance, coverage, confidence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_utils import evaluation as ev
from gan_utils.data import MNISTDataError, load_mnist


@pytest.fixture(scope="module")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return load_mnist(train=False, download=False)
    except MNISTDataError:
        pytest.skip("MNIST not found; set GAN_DATA_DIR")


def _gaussian(n: int = 4000, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) @ np.diag(np.linspace(0.5, 2.0, d))


def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    feats = _gaussian()
    assert ev.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_a_shift_is_the_squared_shift() -> None:
    feats = _gaussian()
    # Same covariance, mean moved by c in every one of d coordinates: FD = d * c^2 exactly.
    assert ev.frechet_distance(feats, feats + 0.5) == pytest.approx(8 * 0.25, rel=1e-6)
    assert ev.frechet_distance(feats, feats + 1.0) > ev.frechet_distance(feats, feats + 0.5)


def test_frechet_distance_sees_a_change_of_spread() -> None:
    feats = _gaussian()
    feats -= feats.mean(0)  # so that only the spread differs
    # Scaling by s changes each variance v to s^2 v: FD = sum (s - 1)^2 v.
    expected = float(np.trace(np.cov(feats, rowvar=False))) * (2 - 1) ** 2
    assert ev.frechet_distance(feats, 2 * feats) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_survives_singular_covariances() -> None:
    feats = _gaussian()
    feats[:, 0] = 0.0  # a dead feature, as a ReLU unit can be
    assert np.isfinite(ev.frechet_distance(feats, _gaussian(seed=1)))


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((10, 3)), np.zeros((10, 4)), "same D"),
    (np.zeros(10), np.zeros((10, 1)), "same D"),
    (np.full((10, 2), np.nan), np.zeros((10, 2)), "NaN"),
    (np.zeros((1, 2)), np.zeros((10, 2)), "at least 2"),
])
def test_frechet_distance_rejects_bad_input(a: np.ndarray, b: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ev.frechet_distance(a, b)


def test_classifier_loads_with_its_accuracy_and_shapes() -> None:
    model = ev.load_classifier()
    assert not model.training
    assert ev.classifier_accuracy() >= 0.99
    x = torch.zeros(5, 1, 28, 28)
    assert model.features(x).shape == (5, ev.MNISTClassifier.FEATURE_DIM)
    assert model(x).shape == (5, 10)
    assert model(x.reshape(5, 784)).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) < 400_000


def test_classifier_is_right_on_real_test_digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = mnist_test
    feats, probs = ev.classify(images[:500])
    assert feats.shape == (500, ev.MNISTClassifier.FEATURE_DIM) and probs.shape == (500, 10)
    assert np.allclose(probs.sum(1), 1.0)
    assert (probs.argmax(1) == labels[:500].numpy()).mean() >= 0.97


def test_scores_tell_real_digits_from_noise_and_collapse(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = mnist_test
    real = ev.score_images(images[5000:7000])
    noise = ev.score_images(torch.rand(2000, 784) * 2 - 1)
    ones = ev.score_images(images[labels == 1][:1000])
    assert real["classes_5pct"] == 10 and real["min_class_share"] > 0.07 and real["mean_confidence"] > 0.95
    assert real["fd"] < noise["fd"] and real["fd"] < ones["fd"]
    assert ones["classes_5pct"] == 1 and ones["class_shares"][1] > 0.95
    assert sum(real["class_shares"]) == pytest.approx(1.0)


def test_evaluate_generator_restores_mode_and_table_lists_models() -> None:
    G = torch.nn.Sequential(torch.nn.Linear(96, 784), torch.nn.Tanh())
    G.train()
    result = ev.evaluate_generator(G, n=300)
    assert G.training
    assert set(result) >= {"fd", "min_class_share", "classes_5pct", "mean_confidence", "class_shares"}
    table = ev.evaluation_table({"toy G": result, "another": result})
    assert "toy G" in table and "another" in table and f"{result['fd']:.2f}" in table


def test_saved_classifier_round_trips(tmp_path) -> None:
    path = tmp_path / "clf.pt"
    ev.save_classifier(ev.load_classifier(), 0.995, path)
    assert ev.classifier_accuracy(path) == 0.995
    assert [p.name for p in tmp_path.iterdir()] == ["clf.pt"]  # no temporary file left behind
    x = torch.rand(3, 784) * 2 - 1
    assert torch.allclose(ev.load_classifier(path)(x), ev.load_classifier()(x))
