"""mlcil.learners.analytic.prior: the name prior's pure functions against explicit sums over names."""

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.learners.analytic import prior


def test_check_names_accepts_one_finite_row_per_class_and_names_the_field():
    E = prior.check_names(np.ones((3, 4)), 3, 4, "analytic")
    assert E.dtype == np.float32 and E.shape == (3, 4)
    with pytest.raises(MlcilError, match=r"label_embeddings: expected 3×4"):
        prior.check_names(np.ones((2, 4)), 3, 4, "analytic")
    with pytest.raises(MlcilError, match="label_embeddings: expected"):
        prior.check_names(np.ones(12), 3, 4, "analytic")
    with pytest.raises(MlcilError, match="NaN or inf"):
        prior.check_names(np.full((3, 4), np.nan), 3, 4, "analytic")


def test_prior_statistics_are_beta_weighted_pseudo_examples():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(3, 5))
    G, B = prior.prior_statistics(phi, 0.5)
    np.testing.assert_allclose(G, sum(0.5 * np.outer(p, p) for p in phi), rtol=1e-12)
    # name c is positive for class c and negative for the session's other classes: B = β Φᵀ I
    np.testing.assert_allclose(B, 0.5 * phi.T @ np.eye(3), rtol=1e-12)


def test_prior_gram_sums_the_selected_classes_only():
    rng = np.random.default_rng(1)
    phi = rng.normal(size=(4, 3))
    weights = np.array([1.0, 0.0, 2.0, 0.5])
    cols = np.array([True, True, False, True])
    want = sum(weights[c] * np.outer(phi[c], phi[c]) for c in np.flatnonzero(cols))
    np.testing.assert_allclose(prior.prior_gram(phi, weights, cols), want, rtol=1e-12)
    assert not prior.prior_gram(phi, weights, np.zeros(4, dtype=bool)).any()
