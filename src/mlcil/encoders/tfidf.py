"""Offline text encoder: TF-IDF + truncated SVD (LSA), fitted on the training split only."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.encoders.base import Encoder
from mlcil.errors import MlcilError


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 (hex) of a sequence of texts, order-sensitive and unambiguous (length-prefixed)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


class TfidfSvdEncoder(Encoder):
    """TF-IDF (word unigrams+bigrams by default) followed by truncated SVD to ``dim`` dimensions.

    Needs no downloaded weights: :meth:`fit` learns the vocabulary, IDF weights and the SVD basis
    from the training texts (pass only the training split). Output rows are L2-normalised when
    ``normalize`` (the default). Equivalent to scikit-learn's
    ``make_pipeline(TfidfVectorizer(...), TruncatedSVD(dim, random_state=seed), Normalizer())``.

    Args:
        dim: output size d (must be below the vocabulary size).
        max_features: vocabulary cap (most frequent terms).
        min_df: drop terms in fewer than this many training documents.
        ngram_max: 1 = unigrams, 2 = unigrams and bigrams.
        sublinear_tf: use 1 + log(tf).
        normalize: L2-normalise the output rows.
        seed: seeds the randomized SVD.
    """

    kind = "tfidf-svd"
    modality = "text"
    needs_fit = True

    def __init__(self, dim: int = 256, max_features: int = 100_000, min_df: int = 2, ngram_max: int = 2,
                 sublinear_tf: bool = True, normalize: bool = True, seed: int = 0) -> None:
        if int(dim) < 1:
            raise MlcilError(f"tfidf-svd: dim must be >= 1, got {dim}")
        self.dim_ = int(dim)
        self.max_features = int(max_features)
        self.min_df = int(min_df)
        self.ngram_max = int(ngram_max)
        self.sublinear_tf = bool(sublinear_tf)
        self.normalize = bool(normalize)
        self.seed = int(seed)
        self.vectorizer_: Any = None
        self.svd_: Any = None
        self.fit_digest_: str | None = None

    @property
    def dim(self) -> int:
        return self.dim_

    def params(self) -> str:
        return (f"dim={self.dim_},max_features={self.max_features},min_df={self.min_df},ngram_max={self.ngram_max},"
                f"sublinear_tf={self.sublinear_tf},normalize={self.normalize},seed={self.seed}")

    @property
    def id(self) -> str:
        if self.fit_digest_ is None:
            raise MlcilError("tfidf-svd: not fitted; call fit(training texts) first (its id names the fitted data)")
        import sklearn

        return f"tfidf-svd:{self.params()},fit={self.fit_digest_[:16]},sklearn={sklearn.__version__}"

    def fit(self, inputs: Sequence[str], cache_dir: str | os.PathLike | None = None) -> "TfidfSvdEncoder":
        """Learn vocabulary, IDF and SVD basis from training texts (list of str).

        With ``cache_dir``, the fitted state is stored as ``fitted-<sha256(params, texts)>.joblib``
        there and loaded instead of refitting when the same parameters meet the same texts.
        """
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = list(inputs)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise MlcilError("tfidf-svd: fit needs a non-empty list of training texts (str)")
        digest = texts_digest(texts)
        stored = None
        if cache_dir is not None:
            import sklearn

            key = hashlib.sha256(f"{self.params()}|{digest}|{sklearn.__version__}".encode()).hexdigest()[:32]
            stored = Path(cache_dir).expanduser() / f"fitted-{key}.joblib"
            if stored.is_file():
                import joblib

                try:
                    self.vectorizer_, self.svd_ = joblib.load(stored)
                except Exception as exc:  # a truncated or foreign file
                    raise MlcilError(f"{stored}: unreadable fitted tfidf-svd state ({exc}); delete it to refit") from None
                self.fit_digest_ = digest
                return self
        vec = TfidfVectorizer(max_features=self.max_features, min_df=self.min_df,
                              ngram_range=(1, self.ngram_max), sublinear_tf=self.sublinear_tf, dtype=np.float32)
        try:
            T = vec.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary
            raise MlcilError(f"tfidf-svd: cannot build a vocabulary from {len(texts)} training texts ({exc})") from None
        if self.dim_ >= T.shape[1]:
            raise MlcilError(f"tfidf-svd: dim={self.dim_} must be below the vocabulary size ({T.shape[1]} terms); "
                             f"lower dim or min_df")
        svd = TruncatedSVD(n_components=self.dim_, random_state=self.seed)
        svd.fit(T)
        self.vectorizer_, self.svd_ = vec, svd
        self.fit_digest_ = digest
        if stored is not None:
            import joblib

            stored.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{stored.name}.", suffix=".part", dir=stored.parent)
            os.close(fd)
            try:
                joblib.dump((vec, svd), tmp)
                os.replace(tmp, stored)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return self

    def forward(self, batch: list[str]) -> np.ndarray:
        if self.svd_ is None:
            raise MlcilError("tfidf-svd: not fitted; call fit(training texts) first")
        Z = self.svd_.transform(self.vectorizer_.transform(batch)).astype(np.float32)
        if self.normalize:
            norms = np.linalg.norm(Z, axis=1, keepdims=True)
            Z /= np.where(norms > 0, norms, 1.0)
        return Z
