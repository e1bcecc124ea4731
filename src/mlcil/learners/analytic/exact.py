"""Exact operations of :class:`~mlcil.learners.analytic.Analytic`: spawn and merge, forgetting classes and examples.

The statistics G and B are sums over rows, so two learners with the same frame (feature map, λ, α) and the
same sessions merge by adding them: the result equals one learner fed both shards. A class is forgotten by
dropping its columns of B (its rows stay as data); an example by subtracting its contribution (with a label
memory, from every session it was learned in). Exact except where noted: pseudo-labels and ``balance`` weights
depend on each learner's own model or shard.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from mlcil.decide.calibration import select_calibration
from mlcil.errors import MlcilError
from mlcil.learners import label_memory


class ExactOperations:
    """The learner's spawn, merge and forgetting (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    def spawn(self) -> Self:
        """An empty learner with this learner's frame (R, standardisation, λ, α).

        Feed it other data for the same sessions and :meth:`merge` it back: the result is
        exactly the learner fed both (distributed or federated learning).
        """
        if not self.has_frame:
            raise MlcilError(f"{self.name}: spawn needs a frame; learn a first session")
        twin = type(self)(**self.get_params())
        for key in ("n_features_", "include_x_", "scaling_", "shift_", "scale_", "R_", "lambda_", "alpha_"):
            setattr(twin, key, getattr(self, key))
        for key in ("frame_rows_", "clip_"):  # (learners saved before they existed have none)
            if hasattr(self, key):
                setattr(twin, key, getattr(self, key))
        if hasattr(self, "lambda_grid_"):  # the grid λ is re-chosen on (lambda_search='sessions'); no evidence yet
            twin.lambda_grid_ = self.lambda_grid_
            twin.lambda_evidence_ = np.zeros(len(self.lambda_grid_))
            if hasattr(self, "lambda_curves_"):
                twin.lambda_curves_ = np.zeros((0, len(self.lambda_grid_)))
        return twin

    def merge(self, other: Self) -> Self:
        """Add ``other``'s statistics to this learner's (same frame, same sessions); exact.

        Calibration and thresholds stay this learner's. Not exact for 'pseudo' (its labels
        depend on each learner's model) or with ``balance`` (weights depend on each shard).
        With a label memory both learners must have one, and each example must have been fed to one
        of them only (shard by example, e.g. ``ridge.row_digests(X) % n_shards``): an example in both
        would count twice in G, and no input is kept to correct it, so that is refused.
        With ``lambda_search='gcv'`` and a label memory (one system for every class) λ is re-chosen from the
        merged statistics, exactly as one learner fed both shards. Otherwise, with ``lambda_search='sessions'``
        or ``'gcv'``, each learner re-chose λ on its own rows; the merged learner takes λ from their summed
        evidence (the statistics still add exactly; λ is then the one the
        pooled per-shard curves favour, not necessarily the one a single learner would have chosen).
        """
        if not isinstance(other, ExactOperations):
            raise MlcilError(f"{self.name}: merge expects an Analytic learner, got {type(other).__name__}")
        searched = self.lambda_search == other.lambda_search and self.lambda_search in ("sessions", "gcv")
        same_lambda = self.lambda_ == other.lambda_ or (searched and np.array_equal(self.lambda_grid_,
                                                                                    other.lambda_grid_))
        if not self.feature_map.same_as(other.feature_map) or not same_lambda or self.alpha_ != other.alpha_:
            raise MlcilError(f"{self.name}: merge needs the same frame (feature map, λ, α); create the other learner "
                             "with spawn()")
        if self.strategy != other.strategy:
            raise MlcilError(f"{self.name}: merge needs the same strategy")
        if self.session_classes_ != other.session_classes_:
            raise MlcilError(
                f"{self.name}: merge needs the same sessions; got {self.session_classes_} and {other.session_classes_}"
            )
        if self.memory or other.memory:
            merged_memory = self._merged_memory(other)
        other_G, other_B = other._without_prior()
        self.G_ = [a + b for a, b in zip(self.G_, other_G)]
        self.B_ = [a + b for a, b in zip(self.B_, other_B)]
        if self.memory:
            self.memory_ = merged_memory
            if hasattr(self, "G_seen_"):
                self.G_seen_ = self.G_seen_ + other._seen_without_prior()
        self.session_rows_ = [a + b for a, b in zip(self.session_rows_, other.session_rows_)]
        if self._union_gcv():  # λ from the merged union's statistics, as one learner fed both shards
            self._reselect_union_lambda()
        elif searched and hasattr(other, "lambda_evidence_"):
            # each learner chose λ on its own rows: λ from their pooled evidence (the statistics add exactly)
            self.lambda_evidence_ = getattr(self, "lambda_evidence_", 0.0) + other.lambda_evidence_
            mine, theirs = getattr(self, "lambda_curves_", None), getattr(other, "lambda_curves_", None)
            if mine is not None and theirs is not None and mine.shape == theirs.shape:
                self.lambda_curves_ = mine + theirs  # (per class, as the evidence: forget stays consistent)
            elif mine is not None:
                del self.lambda_curves_
            if not np.array_equal(self.lambda_evidence_, other.lambda_evidence_) or self.lambda_ != other.lambda_:
                self.lambda_ = (self._gcv_lambda(self.lambda_evidence_) if self.lambda_search == "gcv" else
                                float(self.lambda_grid_[int(np.argmax(self.lambda_evidence_))]))
        self._solve()
        return self


    def _forget(self, keep: np.ndarray) -> None:
        """Drop classes: their columns of B go, the rows they came with stay as data.

        Exactly equals a learner fed the same sessions with those label columns removed.
        """
        sizes = [len(c) for c in self.session_classes_]
        weights = getattr(self, "prior_weight_", None)
        if weights is not None:  # a forgotten class's name pseudo-example leaves G too
            col = 0
            self.G_ = list(self.G_)
            for s, k in enumerate(sizes):
                cols = np.zeros(len(keep), dtype=bool)
                cols[col:col + k] = ~keep[col:col + k]
                if weights[cols].any():
                    g = s if self._per_session() else 0
                    self.G_[g] = self.G_[g] - self._prior_gram(cols)
                col += k
            self.prior_phi_ = self.prior_phi_[np.flatnonzero(keep)]
            self.prior_weight_ = weights[keep]
        col, B_list, sessions = 0, [], []
        for B, cls in zip(self.B_, self.session_classes_):
            k = len(cls)
            mask = keep[col:col + k]
            B_list.append(B[:, mask])
            sessions.append([c for c, m in zip(cls, mask) if m])
            col += k
        self.B_, self.session_classes_ = B_list, sessions
        if self.memory:  # their label bits go too
            self.memory_ = label_memory.select_classes(self.memory_, keep)
        self.calibration_, self.thresholds_ = select_calibration(self.calibration_, keep), self.thresholds_[keep]
        if hasattr(self, "calib_data_"):
            col, data = 0, []
            for d, k in zip(self.calib_data_, sizes):
                mask = keep[col:col + k]
                data.append({"scores": d["scores"][:, mask], "labels": d["labels"][:, mask], "weights": d["weights"]})
                col += k
            self.calib_data_ = data
        self._forget_label_curves(keep)
        self._reselect_union_lambda()
        self._solve()

    def forget_examples(self, X, Y=None, classes=None, ids=None) -> Self:
        """Subtract examples learned in the session of ``classes``: exact unlearning.

        X n×d and Y n×len(classes) must be the rows and labels that session was given
        (``classes`` in the same order as learned). Equals a learner never fed them.

        With a label memory, rows are checked against it (an unknown row or other labels raise,
        and nothing changes), and ``Y`` and ``classes`` may be left out: each example is then
        forgotten from every session it was learned in, with the labels the memory holds. ``ids``:
        the examples' ids when ``memory_key='index'``.
        """
        if self.strategy == "pseudo" or self.balance:
            raise MlcilError(f"{self.name}: forget_examples is exact only without pseudo-labels and balance weights")
        if self.memory:
            return self._forget_remembered(X, Y, classes, ids)
        if Y is None or classes is None:
            raise MlcilError(f"{self.name}: forget_examples needs Y and classes (the session the rows were learned "
                             "in); only a learner with memory='labels' can find them itself")
        X, Y, s = self._session_rows(X, Y, classes, "forget_examples")
        G, B = self._stats(X, Y, None)
        g_index = s if self._per_session() else 0
        self.G_[g_index] = self.G_[g_index] - G
        self.B_[s] = self.B_[s] - B
        self.session_rows_[s] -= int(X.shape[0])
        self._solve()
        return self

