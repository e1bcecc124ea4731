"""The label memory of :class:`~mlcil.learners.analytic.Analytic` (``memory='labels'``).

Per example seen, a 64-bit key and its given label bits, never its input (the table and its pure operations:
:mod:`mlcil.learners.label_memory`). G_all then sums φφᵀ over examples, not over rows: an example that
reappears in a later session (the field's protocol) adds its new labels to B and no second φφᵀ, K_s still sums
the rows whose C_s labels were given, so the learner equals the fit on the union of the examples with every
given label. Merge (examples in one learner only) and forgetting stay exact; ``forget_examples`` can forget an
example from every session by its input alone.

:class:`LabelMemory`: the learner's memory methods (statistics of fresh and reappearing rows, pseudo-labels of
rows whose labels are unknown, merge and exact forgetting).
"""

from __future__ import annotations

from typing import Self

import numpy as np

from mlcil import ridge
from mlcil.errors import MlcilError
from mlcil.learners import label_memory

#: values of ``memory``: None (exemplar-free, nothing per example) or 'labels' (label memory).
MEMORIES = (None, "labels")
#: values of ``memory_key``: what identifies an example in the label memory.
MEMORY_KEYS = ("content", "index")


class LabelMemory:
    """The learner's label-memory methods (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    @property
    def memory_bytes(self) -> int | None:
        """Bytes the label memory keeps (keys and label bits, no input); None without one."""
        if not self.memory:
            return None
        pseudo = getattr(self, "memory_pseudo_", None)
        return (label_memory.nbytes(self.memory_) if hasattr(self, "memory_") else 0) + \
            (0 if pseudo is None else int(pseudo.nbytes))

    def _check_session(self, session):
        checked = super()._check_session(session)
        self._incoming_ids = np.asarray(session.index)  # the caller's ids, for memory_key='index'
        return checked

    def _memory_keys(self, X, ids=None) -> np.ndarray:
        """(n,) uint64 keys of the rows of X: content digests, or digests of the caller's ids."""
        if self.memory_key == "content":
            return ridge.row_digests(X)
        ids = getattr(self, "_incoming_ids", None) if ids is None else np.asarray(ids)
        if ids is None or ids.shape != (X.shape[0],):
            raise MlcilError(f"{self.name}: memory_key='index' needs one id per row (session.index, or ids=...) for "
                             f"{X.shape[0]} rows, got {None if ids is None else ids.shape}")
        return ridge.id_digests(ids)

    def _subset_stats(self, X, Y: np.ndarray, rows: np.ndarray, gram: bool = True):
        """(G, B) of the given rows (zeros when there are none); G is None when ``gram`` is False."""
        if len(rows) == 0:
            D = self.feature_map.D
            return (np.zeros((D, D)) if gram else None), np.zeros((D, Y.shape[1]))
        return self._stats(X[rows], np.asarray(Y)[rows], None, gram=gram)

    def _memory_statistics(self, X, Y: np.ndarray, fresh: np.ndarray):
        """(G of every row, B of every row, G of the rows seen for the first time) of a later session.
        Rows seen before add their new labels to B and no second φφᵀ to G_all; G of every row (K_s)
        is needed only by the strategies that keep a Gram matrix per session and by the per-session GCV
        curves of ``lambda_search='gcv'`` (not by the union's, :meth:`_union_gcv`)."""
        # the session's whole Gram for K_s, and for the per-session GCV curve (not needed by the union's)
        whole = self._per_session() or (self.lambda_search == "gcv" and not self._union_gcv())
        G_fresh, B_fresh = self._subset_stats(X, Y, np.flatnonzero(fresh))
        G_again, B_again = self._subset_stats(X, Y, np.flatnonzero(~fresh), gram=whole)
        G_new = G_fresh + G_again if whole else None
        return G_new, B_fresh + B_again, G_fresh

    def _memory_pseudo(self, X, recall, G_list: list, B_list: list, G_fresh: np.ndarray) -> np.ndarray:
        """Pseudo-label the old classes of each earlier session s on this session's rows whose labels for
        C_s are unknown (neither given nor pseudo-labelled before): their targets join B_s and their φφᵀ
        joins K_s. Rows whose labels the memory holds are not pseudo-labelled. Returns the n × T mask of
        (row, session) pairs that were."""
        _, records, fresh = recall
        T = len(self.session_classes_)
        open_ = np.ones((X.shape[0], T), dtype=bool)
        again = np.flatnonzero(~fresh)
        if again.size:
            known = label_memory.session_bits(self.memory_, records[again])
            pseudo = label_memory.unpack(self.memory_pseudo_[records[again]], T)
            open_[again] = ~(known | pseudo)
        targets = self._pseudo_labels(X).astype(np.float64)
        sizes = [len(c) for c in self.session_classes_]
        class_session = np.repeat(np.arange(T), sizes)
        _, B_pseudo = self._subset_stats(X, targets * open_[:, class_session], np.arange(X.shape[0]), gram=False)
        col = 0
        for s, k in enumerate(sizes):
            B_list[s] += B_pseudo[:, col:col + k]
            col += k
            G_again, _ = self._subset_stats(X, targets[:, :0], np.intersect1d(again, np.flatnonzero(open_[:, s])))
            G_list[s] = G_list[s] + (G_fresh + G_again)
        return open_

    def _pseudo_bits_after(self, recall, opened: np.ndarray | None) -> np.ndarray:
        """records × T packed bits of the (example, session) pairs pseudo-labelled so far."""
        memory, records, _ = recall
        N, T, _ = label_memory.size(memory)
        bits = np.zeros((N, T), dtype=bool)
        old = getattr(self, "memory_pseudo_", None)
        if old is not None:
            bits[:old.shape[0], :T - 1] = label_memory.unpack(old, T - 1)
        if opened is not None:
            bits[records, :opened.shape[1]] |= opened
        return label_memory.pack(bits)

    def _merged_memory(self, other: Self) -> dict:
        if not (self.memory and other.memory) or self.memory_key != other.memory_key:
            raise MlcilError(f"{self.name}: merge needs both learners with the same label memory "
                             f"(memory={self.memory!r}/{other.memory!r}, memory_key={self.memory_key!r}/"
                             f"{other.memory_key!r})")
        if self.strategy == "pseudo":
            raise MlcilError(f"{self.name}: merge with a label memory is refused for 'pseudo' (each learner "
                             "pseudo-labelled with its own model)")
        return label_memory.concat(self.memory_, other.memory_)

    def _forget_remembered(self, X, Y, classes, ids) -> Self:
        """forget_examples with a label memory: find the rows' records, subtract exactly what they added."""
        X = self._check_X(X)
        keys = self._memory_keys(X, ids)
        sizes = [len(c) for c in self.session_classes_]
        T = len(sizes)
        class_session = np.repeat(np.arange(T), sizes)
        if classes is not None:
            if Y is None:
                raise MlcilError(f"{self.name}: forget_examples: give Y with classes (the labels that session was "
                                 "given), or neither to forget the examples from every session")
            X, Y, s = self._session_rows(X, Y, classes, "forget_examples")
            records = label_memory.session_records(self.memory_, keys, s, Y, np.flatnonzero(class_session == s))
            sessions = np.zeros((X.shape[0], T), dtype=bool)
            sessions[:, s] = True
        else:
            if Y is not None:
                raise MlcilError(f"{self.name}: forget_examples: Y needs classes (the session it labels)")
            records = label_memory.example_records(self.memory_, keys)
            sessions = label_memory.session_bits(self.memory_, records)
        labels = label_memory.label_bits(self.memory_, records)
        memory, gone = label_memory.clear(self.memory_, records, sessions, class_session)
        per_session = self._per_session()
        G_list, B_list = list(self.G_), list(self.B_)
        rows_per_session = list(self.session_rows_)
        for s in range(T):
            rows = np.flatnonzero(sessions[:, s])
            if rows.size == 0:
                continue
            G_s, B_s = self._subset_stats(X, labels[:, class_session == s].astype(np.uint8), rows, gram=per_session)
            B_list[s] = B_list[s] - B_s
            if per_session:
                G_list[s] = G_list[s] - G_s
            rows_per_session[s] -= int(rows.size)
        G_gone, _ = self._subset_stats(X, labels[:, :0], np.flatnonzero(gone))
        if per_session:
            self.G_seen_ = self.G_seen_ - G_gone
        else:
            G_list[0] = G_list[0] - G_gone
        self.G_, self.B_, self.session_rows_, self.memory_ = G_list, B_list, rows_per_session, memory
        self._reselect_union_lambda()
        self._solve()
        return self
