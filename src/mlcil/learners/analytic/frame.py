"""The frame of :class:`~mlcil.learners.analytic.Analytic`: feature map, input scaling and state budget.

The first session fixes the frame: whether the scaled input joins the random features (``include_x``), the
input scaling (chosen with λ by closed-form leave-one-out mAP when ``scaling='auto'``, on a sample of rows
and the first random features), its per-column statistics (from :meth:`Frame.fit_frame`'s unlabelled
rows when given) and R. φ itself is the ridge core's :class:`~mlcil.ridge.FeatureMap`; the statistics go
through the engine of the ``learn`` call. Before anything is allocated the state's size is checked against
the memory budget (:func:`mlcil.ridge.check_budget`).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from mlcil import ridge
from mlcil.data.dataset import check_features
from mlcil.engines import resolve_engine
from mlcil.errors import MlcilError
from mlcil.ridge import absence as ridge_absence

#: rows of the first session sampled to choose the input scaling (``scaling='auto'``).
SCALING_SEARCH_ROWS = 8000
#: random features used while choosing the scaling (the first columns of R): the ranking of scalings
#: needs far fewer features than the final fit, and the search costs one eigendecomposition per candidate.
SCALING_SEARCH_FEATURES = 512
#: ``clip='auto'``: the per-column scalings are winsorised at this many spreads when their statistics come from
#: fewer than :data:`AUTO_CLIP_ROWS` rows, and not at all from more. A spread fitted on a few dozen rows misses the
#: tails (birds: 47 rows, 11 of 260 columns constant in them) and a later row far out then dominates its features;
#: from more rows the tails are seen, and clipping only removes signal (langlog, 101 rows, and slashdot, 302
#: rows, lose 2–3 points at clip = 3). Measured: ``docs/learners/analytic.md``.
AUTO_CLIP = 3.0
AUTO_CLIP_ROWS = 64
#: values of ``scaling`` (the ridge core's scalings, plus 'auto').
SCALING_CHOICES = ("auto", *ridge.SCALINGS)


class Frame:
    """The learner's frame methods (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    @property
    def feature_map(self) -> ridge.FeatureMap:
        """The fitted feature map φ (the ridge core's :class:`~mlcil.ridge.FeatureMap`) on ``device``."""
        cached = getattr(self, "_fmap", None)
        if cached is None or cached[0] is not self.R_ or cached[1] != self.device:
            fmap = ridge.FeatureMap(self.R_, self.scaling_, self.shift_, self.scale_, self.include_x_, self._clip(),
                                    device=self.device)
            self._fmap = cached = (self.R_, self.device, fmap)
        return cached[2]


    def _features(self, X) -> np.ndarray:
        """φ(X) of a bounded block of rows (n×D float32)."""
        return self.feature_map(X)

    def _stats(self, X, Y: np.ndarray, weights: np.ndarray | None, gram: bool = True):
        st = resolve_engine(self._engine).statistics(self.feature_map, X, Y, weights, precision=self.precision,
                                                     gram=gram)
        return (st.G if gram else None), st.B


    def _clip(self) -> float | None:
        """The winsorising level in use: ``clip_`` once the frame is fixed (``clip='auto'`` resolved; a learner
        saved before 'auto' existed has only ``clip``)."""
        if hasattr(self, "clip_"):
            return self.clip_
        return None if isinstance(self.clip, str) else self.clip

    def _resolved_clip(self, rows: int) -> float | None:
        """``clip`` for a frame whose scaling statistics come from ``rows`` rows ('auto': :data:`AUTO_CLIP` below
        :data:`AUTO_CLIP_ROWS` rows, else None)."""
        if isinstance(self.clip, str):
            return AUTO_CLIP if rows < AUTO_CLIP_ROWS else None
        return None if self.clip is None else float(self.clip)

    def _resolved_include_x(self, d: int) -> bool:
        return bool(d <= ridge.INCLUDE_X_MAX_FEATURES) if self.include_x == "auto" else bool(self.include_x)

    def _scaling_candidates(self, X) -> list[str]:
        if self.scaling != "auto":
            return [self.scaling]
        return ["none", "scale" if ridge.features.sp.issparse(X) else "standardize", "l2"]

    def _check_memory(self, d: int, extra_sessions: int) -> None:
        """Refuse before allocating when the state and the solve's work space would exceed the budget."""
        include_x = self.include_x_ if self.has_frame else self._resolved_include_x(d)
        D = int(self.M) + (d if include_x else 0)
        per_session = self._per_session(getattr(self, "alpha_", 0.0))
        n_G = len(getattr(self, "G_", [])) + (extra_sessions if per_session or not getattr(self, "G_", []) else 0)
        n_G += 1 if self.memory and per_session and not hasattr(self, "G_seen_") else 0  # G_seen_
        gram = D * D * 8
        check_budget = ridge.check_budget
        check_budget(self.name, {f"{n_G} Gram matrix(es) G (D = {D})": n_G * gram,
                                 "solve work space (G_all, A, factor, eigenvectors)": 4 * gram},
                     self.memory_budget,
                     hint=f"lower M (now {self.M})" + (f" or set include_x=False (d = {d} input features)"
                                                       if include_x else ""))

    def fit_frame(self, X) -> Self:
        """Fit the input scaling's per-column statistics on unlabelled rows of the domain, before the first session.

        X: n×d float (dense or CSR), no labels: e.g. a sample of the items the tagger will see. Without it
        'standardize' and 'scale' take their statistics from the first session's rows, which can be few and
        unlike later sessions' (birds: 47 rows, 11 of 260 columns constant in them), and no later statistic
        can change a scaling that is inside G. The first session still chooses the scaling ('auto') and draws
        R; only the statistics (mean, spread) come from X. Bounded memory (row chunks). Returns self.
        """
        if self.has_frame:
            raise MlcilError(f"{self.name}: fit_frame must come before the first session: the frame is fixed by then")
        X = check_features(X, f"{self.name}: fit_frame X")
        if X.shape[0] < 2:
            raise MlcilError(f"{self.name}: fit_frame X: expected at least 2 rows to fit a spread, got {X.shape[0]}")
        pool: dict[str, Any] = {"n_features": int(X.shape[1]), "rows": int(X.shape[0])}
        for candidate in ("scale",) if ridge.features.sp.issparse(X) else ("standardize", "scale"):
            pool[candidate] = ridge.fit_scaling(X, candidate)
        self._frame_pool = pool
        return self

    def _scaling_statistics(self, X, scaling: str):
        """(shift, scale) of ``scaling``: from :meth:`fit_frame`'s rows when given, else from X."""
        pool = getattr(self, "_frame_pool", None)
        if pool is not None and scaling in pool:
            return pool[scaling]
        return ridge.fit_scaling(X, scaling)

    def _set_frame(self, X, Y: np.ndarray, weights):
        """Fix the frame from the first session: include_x, the input scaling (chosen by leave-one-out
        mAP with λ when ``scaling='auto'``) and R. Returns the first session's (G, B)."""
        ridge.resolve_device(self.device)  # a clear error for a device name that is not one
        pool = getattr(self, "_frame_pool", None)
        if pool is not None and pool["n_features"] != X.shape[1]:
            raise MlcilError(f"{self.name}: session.X has {X.shape[1]} features, but fit_frame was given rows of "
                             f"{pool['n_features']}")
        self.n_features_ = int(X.shape[1])
        self.include_x_ = self._resolved_include_x(X.shape[1])
        R = ridge.gaussian_projection(X.shape[1], int(self.M), self.seed)
        self.clip_ = self._resolved_clip(int(pool["rows"]) if pool is not None else int(X.shape[0]))
        candidates = self._scaling_candidates(X)
        scaling = candidates[0]
        if len(candidates) > 1:
            rng = np.random.default_rng(int(self.seed) * 7919 + 1)
            rows = np.sort(rng.permutation(X.shape[0])[:SCALING_SEARCH_ROWS])
            loo = np.sort(rng.permutation(len(rows))[: int(self.loo_rows)])
            Xs, Ys = X[rows], Y[rows]
            ws = None if weights is None else weights[rows]
            w_loo = None if ws is None else ws[loo]
            scores: dict[str, float] = {}
            R_search = R[:, :SCALING_SEARCH_FEATURES]
            for candidate in candidates:
                shift, scale = self._scaling_statistics(X, candidate)
                fmap = ridge.FeatureMap(R_search, candidate, shift, scale, self.include_x_, self.clip_,
                                        device=self.device)
                st = ridge.partial_statistics(fmap, Xs, Ys, ws, precision=self.precision)
                if ridge_absence.use_dual(len(rows), fmap.D):  # fewer rows than features: eigh in the n×n dual
                    own = ridge_absence.SessionSpectrum.dual(fmap(Xs), Ys, ws, loo)
                    _, maps = ridge.choose_lambda(st.G, own.B, own.phi, Ys[loo],
                                                  ridge.lambda_grid(st.G, self.n_lambdas), w_loo, own.eig)
                else:
                    _, maps = ridge.choose_lambda(st.G, st.B, fmap(Xs[loo]), Ys[loo],
                                                  ridge.lambda_grid(st.G, self.n_lambdas), w_loo)
                scores[candidate] = float(np.nanmax(maps)) if np.isfinite(maps).any() else float("nan")
                if candidate == candidates[0] or scores[candidate] > scores[scaling]:  # NaN never wins
                    scaling = candidate
            self.scaling_scores_ = scores
        self.scaling_ = scaling
        if isinstance(self.clip, str) and scaling not in ("standardize", "scale"):  # 'auto': no spread, no clip
            self.clip_ = None
        self.shift_, self.scale_ = self._scaling_statistics(X, scaling)
        self.frame_rows_ = int(pool["rows"]) if pool is not None and scaling in pool else int(X.shape[0])
        self.R_ = R
        self._fmap = None
        return self._stats(X, Y, weights)

