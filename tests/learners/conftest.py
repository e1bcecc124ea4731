"""Shared fixtures for learner tests: a small separable multi-label stream."""

import numpy as np
import pytest

from mlcil.data.dataset import Dataset
from mlcil.protocols import Protocol

#: Small, fast settings per registered learner for the contract tests.
FAST_PARAMS = {
    "joint": {"M": 64},
    "analytic": {"M": 64},
    "finetune": {"epochs": 3},
    "lwf": {"epochs": 3, "hidden": 16},
    "pseudolabel": {"epochs": 3, "hidden": 16},
    "replay": {"epochs": 3, "hidden": 16, "per_class": 5},
    "joint-sgd": {"epochs": 3, "hidden": 16},
    "l3a": {"hidden": 64},
    "krt": {"dim": 16, "heads": 2, "epochs": 3},
    "csc": {"dim": 16, "epochs": 3},
}


def token_dataset(n: int = 120, n_train: int = 90, name: str = "tok", t: int = 5, d: int = 6, L: int = 4,
                  seed: int = 0) -> Dataset:
    """A dataset with token features (n×t×d float16 and a mask whose last two tokens are sometimes padding);
    X is the tokens' mean, Y its first L columns plus noise (every row has a label); the first n_train rows
    are the train split."""
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(n, t, d)).astype(np.float16)
    mask = np.ones((n, t), bool)
    mask[:, 3:] = rng.random((n, 2)) < 0.5
    X = T.astype(np.float32).mean(1)
    Y = (X[:, :L] + rng.normal(scale=0.3, size=(n, L)) > 0.2).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Dataset(X, Y, [f"c{i}" for i in range(L)], np.where(np.arange(n) < n_train, "train", "test"), name,
                   T=T, mask=mask)


def make_dataset(n=600, d=12, L=6, seed=0, noise=0.3):
    """Labels from a noisy linear model of Gaussian features: learnable, multi-label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    A = rng.normal(size=(d, L))
    logits = X @ A / np.sqrt(d) * 3 + rng.normal(scale=noise, size=(n, L))
    Y = (logits > 1.0).astype(np.uint8)
    Y[Y.sum(1) == 0, np.argmax(logits[Y.sum(1) == 0], axis=1)] = 1
    split = np.where(np.arange(n) < int(0.7 * n), "train", "test")
    return Dataset(X, Y, [f"c{i}" for i in range(L)], split=split, name="synthetic")


@pytest.fixture(scope="session")
def synthetic():
    return make_dataset()


@pytest.fixture(scope="session")
def stream(synthetic):
    return Protocol("B0-C2", order="dataset").build(synthetic)
