"""``Protocol``: turns a Dataset into a class-incremental ``Stream`` (docs/concepts/protocols.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from mlcil.data.dataset import Dataset, take_rows
from mlcil.data.split import stratified_split
from mlcil.errors import MlcilError
from mlcil.protocols.session import Session, Stream

_SPEC = re.compile(r"^B(\d+)-C(\d+)$", re.IGNORECASE)

ORDERS = ("alphabetical", "dataset", "random")
#: How annotation campaigns cover the examples (docs/concepts/protocols.md): ``field`` = every session annotates its
#: classes on every example that carries one (the field's protocol: an example reappears in each such
#: session); ``disjoint`` = each example is annotated in exactly one session, drawn (seeded) among the
#: sessions whose classes it carries (the campaign protocol).
CAMPAIGNS = ("field", "disjoint")


def parse_spec(spec: str) -> tuple[int, int]:
    """Parse ``'B{base}-C{inc}'`` into (base, inc); B0 means the first session has ``inc`` classes."""
    m = _SPEC.match(str(spec).strip())
    if not m:
        raise MlcilError(f"protocol: cannot parse {spec!r}; expected 'B<base>-C<increment>', e.g. 'B0-C10' or 'B40-C10'")
    base, inc = int(m.group(1)), int(m.group(2))
    if inc < 1:
        raise MlcilError(f"protocol: increment must be at least 1 class, got {spec!r}")
    return base, inc


def session_sizes(base: int, inc: int, n_classes: int) -> list[int]:
    """Number of classes per session; the last session takes the remainder."""
    first = base if base > 0 else inc
    if first > n_classes:
        raise MlcilError(f"protocol: first session needs {first} classes but only {n_classes} are available")
    sizes = [first]
    left = n_classes - first
    while left > 0:
        sizes.append(min(inc, left))
        left -= sizes[-1]
    return sizes


def campaign_sessions(member: np.ndarray, seed: int) -> np.ndarray:
    """The one session each example is annotated in under the campaign protocol.

    Args:
        member: n×T boolean, member[i, t] = example i carries a class of session t.
        seed: seeds the draw.
    Returns:
        (n,) int64: a session drawn uniformly among the row's True entries; −1 for rows with none.
    """
    member = np.asarray(member, dtype=bool)
    k = member.sum(axis=1)
    draw = np.floor(np.random.default_rng([int(seed), 0xCA]).random(len(member)) * np.maximum(k, 1)).astype(np.int64)
    # the (draw + 1)-th True entry of each row: the first column where the running count exceeds draw
    pick = np.argmax(np.cumsum(member, axis=1) > draw[:, None], axis=1).astype(np.int64)
    pick[k == 0] = -1
    return pick


class Protocol:
    """Multi-label class-incremental protocol ``B{base}-C{inc}`` with label absence.

    Args:
        spec: ``'B0-C10'`` (10 classes per session) or ``'B40-C10'`` (40 first, then 10).
        order: class order: ``'alphabetical'`` by label name (the COCO/VOC convention),
            ``'dataset'`` (column order), ``'random'`` (seeded permutation), or an explicit
            sequence of label names or column ids.
        seed: seeds the random order, the stratified split and the few-shot sample.
        n_classes: use only the first ``n_classes`` classes of the order (default: all).
        test_size: test fraction of the stratified split, used only when the dataset
            has no official train/test split.
        few_shot: keep at most this many training examples per new class (seeded).
        campaign: ``'field'`` (the field's protocol): each training example appears in every
            session whose classes it carries, labelled only with that session's classes.
            ``'disjoint'`` (the campaign protocol): each training example appears in exactly one
            session, drawn with ``seed`` among the sessions whose classes it carries, labelled only
            with that session's classes; its labels for every other session's classes are never
            given, so positives of a class also hide, unlabelled, in other sessions.

    The test set after session t is every test example with at least one seen class (both
    campaigns). See :class:`~mlcil.protocols.session.Stream`.

    >>> import numpy as np
    >>> from mlcil.data import Dataset
    >>> Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    >>> ds = Dataset(np.eye(4, 2), Y, ["c", "a", "b"], split=["train"] * 3 + ["test"])
    >>> stream = Protocol("B0-C2").build(ds)
    >>> [s.classes.tolist() for s in stream]      # alphabetical: a=1, b=2, then c=0
    [[1, 2], [0]]
    >>> stream.sessions[0].index.tolist(), stream.sessions[1].index.tolist()
    ([0, 1, 2], [0, 2])
    """

    def __init__(
        self,
        spec: str = "B0-C10",
        order: str | Sequence = "alphabetical",
        seed: int = 0,
        n_classes: int | None = None,
        test_size: float = 0.3,
        few_shot: int | None = None,
        campaign: str = "field",
    ) -> None:
        self.spec = spec
        self.order = order
        self.seed = seed
        self.n_classes = n_classes
        self.test_size = test_size
        self.few_shot = few_shot
        self.campaign = campaign
        parse_spec(spec)  # fail early on a bad string
        if campaign not in CAMPAIGNS:
            raise MlcilError(f"campaign: expected one of {', '.join(CAMPAIGNS)}, got {campaign!r}")

    def __repr__(self) -> str:
        campaign = "" if self.campaign == "field" else f", campaign={self.campaign!r}"
        return f"Protocol({self.spec!r}, order={self.order!r}, seed={self.seed}{campaign})"

    def class_order(self, dataset: Dataset) -> np.ndarray:
        """Global class ids in learning order."""
        names, L = dataset.label_names, dataset.L
        if isinstance(self.order, str) and self.order in ORDERS:
            if self.order == "alphabetical":
                return np.array(sorted(range(L), key=lambda c: (names[c].lower(), names[c])), dtype=np.int64)
            if self.order == "dataset":
                return np.arange(L, dtype=np.int64)
            return np.random.default_rng(self.seed).permutation(L).astype(np.int64)
        if isinstance(self.order, str):
            raise MlcilError(f"order: expected one of {', '.join(ORDERS)} or a list of classes, got {self.order!r}")
        index = {name: i for i, name in enumerate(names)}
        ids = []
        for item in self.order:
            if isinstance(item, (int, np.integer)) and 0 <= int(item) < L:
                ids.append(int(item))
            elif str(item) in index:
                ids.append(index[str(item)])
            else:
                raise MlcilError(f"order: unknown class {item!r} (dataset has {L} classes)")
        if len(set(ids)) != len(ids):
            raise MlcilError("order: a class is listed twice")
        return np.array(ids, dtype=np.int64)

    def split(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(train rows, test rows): the official split if the dataset has one, else a stratified one."""
        if dataset.split is not None and {"train", "test"} <= set(np.unique(dataset.split)):
            return np.flatnonzero(dataset.split == "train"), np.flatnonzero(dataset.split == "test")
        test = stratified_split(dataset.Y, self.test_size, self.seed)
        return np.flatnonzero(~test), np.flatnonzero(test)

    def build(self, dataset: Dataset) -> Stream:
        """Build the stream of sessions and the test set from ``dataset``."""
        if dataset.is_raw:
            raise MlcilError(
                f"{dataset.name}: X holds raw inputs (e.g. texts); embed them first (mlcil embed) and pass the embedded dataset"
            )
        base, inc = parse_spec(self.spec)
        order = self.class_order(dataset)
        if self.n_classes is not None:
            if not 1 <= self.n_classes <= len(order):
                raise MlcilError(f"n_classes: expected 1..{len(order)}, got {self.n_classes}")
            order = order[: self.n_classes]
        sizes = session_sizes(base, inc, len(order))
        if self.few_shot is not None and self.few_shot < 1:
            raise MlcilError(f"few_shot: expected a positive number of examples per class, got {self.few_shot}")

        train, test = self.split(dataset)
        X_train, Y_train = take_rows(dataset.X, train), dataset.Y[train]
        rng = np.random.default_rng(self.seed)
        bounds = np.cumsum([0] + sizes)
        groups = [order[bounds[t]:bounds[t + 1]] for t in range(len(sizes))]
        owner = None
        if self.campaign == "disjoint":
            member = np.stack([Y_train[:, g].any(axis=1) for g in groups], axis=1)
            owner = campaign_sessions(member, self.seed)
        sessions = []
        for t, classes in enumerate(groups):
            Yc = Y_train[:, classes]
            rows = np.flatnonzero(Yc.any(axis=1) if owner is None else owner == t)
            if self.few_shot is not None:
                keep = set()
                for j in range(len(classes)):
                    candidates = rows[Yc[rows, j] == 1]
                    keep.update(rng.permutation(candidates)[: self.few_shot].tolist())
                rows = np.array(sorted(keep), dtype=np.int64)
            if len(rows) == 0:
                names = [dataset.label_names[c] for c in classes]
                raise MlcilError(f"protocol {self.spec}: session {t} (classes {names}) has no training example")
            names = dataset.meta.get("label_embeddings")  # L×d embedded label names (mlcil bench --prior names)
            sessions.append(Session(X_train[rows], Yc[rows], classes.copy(), train[rows], t,
                                    None if names is None else np.asarray(names, dtype=np.float32)[classes]))
        return Stream(
            sessions=sessions, X_train=X_train, Y_train=Y_train,
            X_test=take_rows(dataset.X, test), Y_test=dataset.Y[test],
            class_order=order, label_names=list(dataset.label_names),
            train_index=train, test_index=test, spec=self.spec,
            info={"order": self.order if isinstance(self.order, str) else "explicit", "seed": self.seed,
                  "official_split": bool(dataset.split is not None and {"train", "test"} <= set(np.unique(dataset.split))),
                  "few_shot": self.few_shot, "n_classes": len(order), "campaign": self.campaign},
        )
