"""The service's model state at one version: the ridge core's statistics plus the label registry.

The model is the library's ``Analytic`` learner with the ``negative`` label-absence strategy
(docs/concepts/learners.md): φ is the ridge core's :class:`~mlcil.ridge.FeatureMap`, G = Σ φφᵀ over every
stored example and B[:, c] = Σ φ·[c is a known positive] (absent labels and explicit negatives
both count as 0), W = (G + λI)⁻¹B, and a per-label Platt map turns φᵀW into a probability.

A :class:`ModelState` is immutable: every transition returns a new one, so a reader holding a
state sees one consistent version. Transitions are exact: teaching adds φφᵀ and φyᵀ, relabelling
adds φ(y_new − y_old)ᵀ to B only (G does not depend on labels), forgetting subtracts.
Statistics are float64 NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mlcil import ridge


def feature_map(d: int, M: int, seed: int, include_x: bool, scaling: str) -> ridge.FeatureMap:
    """φ for the service's frame (R drawn from ``seed`` exactly as the learners draw it), on the CPU.

    With scaling 'l2' the ridge core scales rows by a power of two first when their components are
    near the float32 limits (exact; x/‖x‖ unchanged), so such rows keep their direction."""
    return ridge.FeatureMap(ridge.gaussian_projection(d, M, seed, "cpu"), scaling, include_x=include_x)


@dataclass(frozen=True)
class Label:
    """One label: id (stable, never reused), name, decision threshold (None = default), Platt map (None = default)."""

    id: int
    name: str
    threshold: float | None = None
    platt: tuple[float, float] | None = None


@dataclass(frozen=True)
class ModelState:
    """Statistics and labels at one version. ``stats`` is None until the embedding dimension is known.

    Columns of ``stats.B`` follow ``labels``. ``lam``: ridge λ; ``lam_fixed``: set by an admin
    (not re-chosen by leave-one-out).
    """

    version: int
    stats: ridge.Stats | None
    labels: tuple[Label, ...] = ()
    lam: float = 1.0
    lam_fixed: bool = False

    @property
    def n_examples(self) -> int:
        return 0 if self.stats is None else int(self.stats.n)

    @property
    def label_ids(self) -> tuple[int, ...]:
        return tuple(lab.id for lab in self.labels)

    @property
    def names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    @property
    def nbytes(self) -> int:
        return 0 if self.stats is None else self.stats.nbytes

    def column(self, label_id: int) -> int:
        return self.label_ids.index(label_id)

    # ---- label registry ------------------------------------------------------------------
    def with_label(self, version: int, label: Label) -> "ModelState":
        """A new label with a zero column (no example known yet)."""
        stats = None if self.stats is None else self.stats.with_columns(np.zeros((self.stats.D, 1)))
        return replace(self, version=version, stats=stats, labels=self.labels + (label,))

    def with_threshold(self, version: int, label_id: int, threshold: float | None) -> "ModelState":
        labels = tuple(replace(lab, threshold=threshold) if lab.id == label_id else lab for lab in self.labels)
        return replace(self, version=version, labels=labels)

    def without_label(self, version: int, label_id: int) -> "ModelState":
        """Drop the label's B column (exact: G does not depend on labels)."""
        keep = [j for j, lab in enumerate(self.labels) if lab.id != label_id]
        stats = None if self.stats is None else self.stats.select(keep)
        return replace(self, version=version, stats=stats, labels=tuple(self.labels[j] for j in keep))

    def with_lambda(self, version: int, lam: float, fixed: bool) -> "ModelState":
        return replace(self, version=version, lam=float(lam), lam_fixed=bool(fixed))

    def with_calibration(self, version: int, lam: float, platt: dict[int, tuple[float, float]]) -> "ModelState":
        """λ and the Platt maps of the labels in ``platt`` (others keep theirs)."""
        labels = tuple(replace(lab, platt=tuple(platt[lab.id])) if lab.id in platt else lab for lab in self.labels)
        return replace(self, version=version, lam=float(lam), labels=labels)

    # ---- statistics ----------------------------------------------------------------------
    def with_stats(self, version: int, stats: ridge.Stats) -> "ModelState":
        return replace(self, version=version, stats=stats)

    def ensure_stats(self, D: int) -> "ModelState":
        """Zero statistics of width D once the dimension is known."""
        if self.stats is not None:
            return self
        return replace(self, stats=ridge.Stats.zeros(D, len(self.labels)))


def targets(known: list[dict[int, int]], label_ids: tuple[int, ...]) -> np.ndarray:
    """n×C float64 ridge targets: 1 where the label is a known positive, else 0 (absent or negative)."""
    col = {lid: j for j, lid in enumerate(label_ids)}
    Y = np.zeros((len(known), len(label_ids)))
    for i, labels in enumerate(known):
        for lid, value in labels.items():
            if value == 1 and lid in col:
                Y[i, col[lid]] = 1.0
    return Y


def row_statistics(fmap: ridge.FeatureMap, X: np.ndarray, Y: np.ndarray) -> ridge.Stats:
    """Statistics (ΦᵀΦ, ΦᵀY, n) of rows X n×d (float32) with targets Y n×C: the ridge core's, chunked."""
    return ridge.partial_statistics(fmap, X, Y)


def relabel_delta(fmap: ridge.FeatureMap, X: np.ndarray, dY: np.ndarray) -> np.ndarray:
    """The change of B (D×C float64) when rows X get their targets changed by dY (n×C): Φᵀ dY."""
    return ridge.partial_statistics(fmap, X, dY, gram=False).B


def stats_to_bytes(stats: ridge.Stats) -> tuple[bytes, bytes]:
    """(G, B) as C-order float64 bytes (how a snapshot stores them)."""
    return (np.ascontiguousarray(stats.G, dtype=np.float64).tobytes(),
            np.ascontiguousarray(stats.B, dtype=np.float64).tobytes())


def stats_from_bytes(G: bytes, B: bytes, D: int, C: int, n: int) -> ridge.Stats:
    """Statistics from :func:`stats_to_bytes` (G D×D, B D×C float64) and the example count n."""
    G_ = np.frombuffer(bytearray(G), dtype=np.float64).reshape(D, D)
    B_ = np.frombuffer(bytearray(B), dtype=np.float64).reshape(D, C)
    return ridge.Stats(G_, B_, int(n))
