import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from mlcil.data import Dataset
from mlcil.encoders import TfidfSvdEncoder, embed_dataset
from mlcil.errors import MlcilError

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def corpus(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(n)]


def test_matches_a_direct_sklearn_pipeline():
    train, test = corpus(60), corpus(20, seed=1)
    enc = TfidfSvdEncoder(dim=5, min_df=2, ngram_max=2, seed=3).fit(train)
    ref = make_pipeline(TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True, max_features=100_000,
                                        dtype=np.float32),
                        TruncatedSVD(5, random_state=3), Normalizer())
    ref.fit(train)
    Z = enc.encode(test)
    assert Z.dtype == np.float32 and Z.shape == (20, 5)
    np.testing.assert_allclose(Z, ref.transform(test), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)


def test_id_names_params_and_fitted_data():
    a = TfidfSvdEncoder(dim=4, min_df=1).fit(corpus(30))
    b = TfidfSvdEncoder(dim=4, min_df=1).fit(corpus(30))
    c = TfidfSvdEncoder(dim=4, min_df=1).fit(corpus(30, seed=5))
    d = TfidfSvdEncoder(dim=3, min_df=1).fit(corpus(30))
    assert a.id == b.id and len({a.id, c.id, d.id}) == 3
    np.testing.assert_array_equal(a.encode(corpus(5, 9)), b.encode(corpus(5, 9)))


def test_not_fitted_and_too_large_dim():
    with pytest.raises(MlcilError, match="not fitted"):
        TfidfSvdEncoder().id
    with pytest.raises(MlcilError, match="not fitted"):
        TfidfSvdEncoder().encode(["x y"])
    with pytest.raises(MlcilError, match="below the vocabulary size"):
        TfidfSvdEncoder(dim=500, min_df=1).fit(corpus(10))


def test_embed_dataset_fits_on_the_training_split_only():
    train, test = corpus(40), ["omega omega omega " * 3] * 5 + corpus(5, seed=2)  # 'omega' only in test rows
    ds = Dataset(train + test, np.eye(2, dtype=np.uint8)[np.arange(50) % 2], ["x", "y"],
                 ["train"] * 40 + ["test"] * 10, "toy")
    enc = TfidfSvdEncoder(dim=4, min_df=1)
    out = embed_dataset(ds, enc, progress=False)
    assert "omega" not in enc.vectorizer_.vocabulary_
    assert out.X.shape == (50, 4) and out.split.tolist() == ds.split.tolist()
    assert np.allclose(out.X[40:45], 0.0)  # unseen words only: the zero vector, not a leak of test vocabulary
    ref = TfidfSvdEncoder(dim=4, min_df=1).fit(train)
    np.testing.assert_allclose(out.X, ref.encode(train + test), atol=1e-6)
    with pytest.raises(MlcilError, match="'train' split"):
        embed_dataset(Dataset(train, ds.Y[:40], ["x", "y"], None, "nosplit"), TfidfSvdEncoder(dim=4), progress=False)


def test_fitted_state_is_cached_by_params_and_texts(tmp_path, monkeypatch):
    from sklearn.decomposition import TruncatedSVD

    train = corpus(40)
    first = TfidfSvdEncoder(dim=4, min_df=1).fit(train, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("fitted-*.joblib"))) == 1

    def no_refit(*args, **kwargs):
        raise AssertionError("refitted despite a cached fit")

    monkeypatch.setattr(TruncatedSVD, "fit", no_refit)
    again = TfidfSvdEncoder(dim=4, min_df=1).fit(train, cache_dir=tmp_path)
    assert again.id == first.id
    np.testing.assert_array_equal(again.encode(train[:5]), first.encode(train[:5]))
    with pytest.raises(AssertionError, match="refitted"):
        TfidfSvdEncoder(dim=3, min_df=1).fit(train, cache_dir=tmp_path)  # other parameters: a new fit
    next(tmp_path.glob("fitted-*.joblib")).write_bytes(b"junk")
    with pytest.raises(MlcilError, match="unreadable fitted tfidf-svd state"):
        TfidfSvdEncoder(dim=4, min_df=1).fit(train, cache_dir=tmp_path)
