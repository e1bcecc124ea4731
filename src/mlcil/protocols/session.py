"""``Session`` and ``Stream``: what a Protocol hands to learners and to the harness."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Session:
    """One session of a class-incremental stream.

    Attributes:
        X: n×d float32 features (ndarray or CSR) of the session's examples.
        Y: n×k uint8 labels for the session's classes only (k = len(classes)); every
            other class is *absent* (unknown), not negative.
        classes: k global class ids (columns of the Dataset's Y) this session introduces.
        index: n row ids into the Dataset.
        t: 0-based position in the stream.
        label_embeddings: optional k×d float32, row j = the name (and description) of ``classes[j]``
            embedded by the encoder that embedded X; learners with a name prior (``analytic``,
            ``prototype``: option ``prior``) use it, others ignore it.
    """

    X: object
    Y: np.ndarray
    classes: np.ndarray
    index: np.ndarray
    t: int = 0
    label_embeddings: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.Y.shape[0])

    def __repr__(self) -> str:
        return f"Session(t={self.t}, n={self.n}, classes={self.classes.tolist()})"


@dataclass
class Stream:
    """The sessions of a protocol plus the test set.

    ``sessions[t]`` is the training data of session t (label absence applied).
    ``X_test``/``Y_test`` hold *every* test example with *all* labels (global columns);
    use :meth:`test_rows` for the protocol's per-session test set and
    :meth:`joint_session` for the upper-bound learner's training data.
    """

    sessions: list[Session]
    X_train: object
    Y_train: np.ndarray
    X_test: object
    Y_test: np.ndarray
    class_order: np.ndarray
    label_names: list[str]
    train_index: np.ndarray
    test_index: np.ndarray
    spec: str = ""
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sessions)

    def __iter__(self):
        return iter(self.sessions)

    def seen_classes(self, t: int) -> np.ndarray:
        """Global ids of the classes introduced in sessions 0..t, in learning order."""
        return np.concatenate([s.classes for s in self.sessions[: t + 1]])

    def test_rows(self, t: int) -> np.ndarray:
        """Rows of X_test evaluated after session t: test examples with a seen class."""
        return np.flatnonzero(self.Y_test[:, self.seen_classes(t)].any(axis=1))

    def joint_session(self, t: int) -> Session:
        """Every training example of sessions 0..t, once, with *all* seen labels.

        This is the data of the joint upper bound after session t (no label absence): exactly
        the rows the sessions held. Under the field's protocol these are the training examples
        with a seen class; under the campaign protocol (``campaign='disjoint'``) an example with a
        seen class that is annotated in a later session is not among them yet.
        """
        seen = self.seen_classes(t)
        given = np.concatenate([s.index for s in self.sessions[: t + 1]])
        rows = np.flatnonzero(np.isin(self.train_index, given))
        return Session(self.X_train[rows], self.Y_train[np.ix_(rows, seen)], seen, self.train_index[rows], t)
