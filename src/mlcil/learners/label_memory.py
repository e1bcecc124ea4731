"""Label memory: which examples a learner has seen and the labels it was given for them — never inputs.

One record per example: a 64-bit key (a content digest of the input row, :func:`mlcil.ridge.row_digests`,
or of a caller-given id), one bit per session (its labels for that session's classes were given) and
one bit per class (the given label; 0 where not given). Bits are packed, 8 per byte, so a record costs
8 + ⌈T/8⌉ + ⌈L/8⌉ bytes (T sessions, L classes).

Rows are matched to records by key. A session never shows one example twice, so rows of one session
with equal keys (identical inputs) are distinct examples: the k-th such row is matched to the k-th
record with that key (insertion order), and a new record is made for each row beyond the records
there are. Identical inputs are therefore interchangeable (their features, hence their statistics,
are identical); only caller-given ids can tell apart two examples with identical inputs that are
annotated in different sessions.

Pure array operations: every function returns new arrays and never changes its arguments, so a
learner that fails half-way keeps its previous memory.
"""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError
from mlcil.ridge.digest import mix64, occurrence


def unpack(bits: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(bits, axis=1, count=width, bitorder="little").astype(bool) if width else \
        np.zeros((bits.shape[0], 0), dtype=bool)


def pack(flags: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(flags, dtype=bool), axis=1, bitorder="little")


def empty() -> dict[str, np.ndarray]:
    """A memory with no record, no session and no class."""
    return {"keys": np.zeros(0, dtype=np.uint64), "sessions": np.zeros((0, 0), dtype=np.uint8),
            "labels": np.zeros((0, 0), dtype=np.uint8), "shape": np.array([0, 0], dtype=np.int64)}


def size(memory: dict) -> tuple[int, int, int]:
    """(records, sessions, classes)."""
    T, L = (int(v) for v in memory["shape"])
    return len(memory["keys"]), T, L


def nbytes(memory: dict) -> int:
    """Bytes of the keys and packed bits."""
    return int(memory["keys"].nbytes + memory["sessions"].nbytes + memory["labels"].nbytes)


def session_bits(memory: dict, records: np.ndarray | None = None) -> np.ndarray:
    """records × T boolean: which sessions gave labels for each record (all records by default)."""
    _, T, _ = size(memory)
    bits = memory["sessions"] if records is None else memory["sessions"][records]
    return unpack(bits, T)


def label_bits(memory: dict, records: np.ndarray | None = None) -> np.ndarray:
    """records × L boolean: the given labels (False where not given)."""
    _, _, L = size(memory)
    bits = memory["labels"] if records is None else memory["labels"][records]
    return unpack(bits, L)


def match(table_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Record of each key (the k-th equal key is matched to the k-th record with that key), −1 if none.

    Args:
        table_keys: (N,) uint64 keys of the records, in record order.
        keys: (n,) uint64 keys of one batch of rows.
    Returns:
        (n,) int64 record indices into ``table_keys``, −1 for rows without a record.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    out = np.full(len(keys), -1, dtype=np.int64)
    if len(table_keys) == 0 or len(keys) == 0:
        return out
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    pos = np.searchsorted(sorted_keys, keys, side="left") + occurrence(keys)
    inside = pos < len(sorted_keys)
    hit = np.zeros(len(keys), dtype=bool)
    hit[inside] = sorted_keys[pos[inside]] == keys[inside]
    out[hit] = order[pos[hit]]
    return out


def add_session(memory: dict, keys: np.ndarray, Y: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """Record a new session: its rows' keys (n) and labels Y (n × k, the session's new classes).

    Returns (new memory, record of each row (n), mask of rows seen for the first time (n)).
    """
    N, T, L = size(memory)
    records = match(memory["keys"], keys)
    fresh = records < 0
    n_new = int(fresh.sum())
    records = records.copy()
    records[fresh] = N + np.arange(n_new)
    sessions = np.zeros((N + n_new, T + 1), dtype=bool)
    sessions[:N, :T] = session_bits(memory)
    sessions[records, T] = True
    labels = np.zeros((N + n_new, L + Y.shape[1]), dtype=bool)
    labels[:N, :L] = label_bits(memory)
    labels[records, L:] = np.asarray(Y) > 0
    keys_all = np.concatenate([memory["keys"], np.asarray(keys, dtype=np.uint64)[fresh]])
    out = {"keys": keys_all, "sessions": pack(sessions), "labels": pack(labels),
           "shape": np.array([T + 1, L + Y.shape[1]], dtype=np.int64)}
    return out, records, fresh


def _label_words(flags: np.ndarray) -> np.ndarray:
    """(n,) uint64 word of each row of an n×k boolean label block: Σ_j flag_j · mix(j + 1)."""
    flags = np.asarray(flags, dtype=bool)
    column_words = mix64(np.arange(1, flags.shape[1] + 1, dtype=np.uint64))
    return (flags.astype(np.uint64) * column_words).sum(axis=1, dtype=np.uint64)


def session_records(memory: dict, keys: np.ndarray, session: int, Y: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Records of rows said to have been learned in ``session`` with labels Y (n × k) on class ``columns`` (k).

    Equal keys are told apart by their labels (identical inputs annotated differently); raises
    MlcilError naming the first row that matches no such record.
    """
    candidates = np.flatnonzero(session_bits(memory)[:, session])
    given = label_bits(memory, candidates)[:, columns]
    table = mix64(memory["keys"][candidates] ^ _label_words(given))
    rows = mix64(np.asarray(keys, dtype=np.uint64) ^ _label_words(np.asarray(Y) > 0))
    found = match(table, rows)
    if (found < 0).any():
        i = int(np.flatnonzero(found < 0)[0])
        raise MlcilError(f"label memory: row {i} was not learned in session {session} with these labels "
                         f"({int((found < 0).sum())} of {len(found)} rows unknown); nothing was changed")
    return candidates[found]


def example_records(memory: dict, keys: np.ndarray) -> np.ndarray:
    """Records of rows given by keys alone; raises MlcilError naming the first unknown row."""
    found = match(memory["keys"], keys)
    if (found < 0).any():
        i = int(np.flatnonzero(found < 0)[0])
        raise MlcilError(f"label memory: row {i} was never learned ({int((found < 0).sum())} of {len(found)} rows "
                         "unknown); nothing was changed")
    return found


def clear(memory: dict, records: np.ndarray, sessions: np.ndarray, class_session: np.ndarray) -> tuple[dict, np.ndarray]:
    """Forget what ``records`` (n, distinct) were given in the sessions flagged in ``sessions`` (n × T
    boolean): those session bits and the labels of those sessions' classes (``class_session``: the
    session of each of the L class columns). Records left with no session are deleted.

    Returns (new memory, mask over ``records`` of the deleted ones)."""
    sessions = np.asarray(sessions, dtype=bool)
    bits = session_bits(memory)
    labels = label_bits(memory)
    bits[records] &= ~sessions
    labels[records] &= ~sessions[:, np.asarray(class_session, dtype=np.int64)]
    gone = ~bits.any(axis=1)
    keep = ~gone
    out = {"keys": memory["keys"][keep], "sessions": pack(bits[keep]), "labels": pack(labels[keep]),
           "shape": memory["shape"].copy()}
    return out, gone[records]


def select_classes(memory: dict, keep: np.ndarray) -> dict:
    """Keep the label columns where ``keep`` (L boolean) is True."""
    _, T, _ = size(memory)
    labels = label_bits(memory)[:, np.asarray(keep, dtype=bool)]
    return {**memory, "labels": pack(labels), "shape": np.array([T, labels.shape[1]], dtype=np.int64)}


def concat(first: dict, second: dict) -> dict:
    """Records of both memories (same sessions and classes); raises if an example is in both."""
    if not np.array_equal(first["shape"], second["shape"]):
        raise MlcilError(f"label memory: cannot merge memories of {first['shape'].tolist()} and "
                         f"{second['shape'].tolist()} (sessions, classes)")
    both = np.intersect1d(first["keys"], second["keys"])
    if both.size:
        raise MlcilError(f"label memory: {both.size} example(s) are in both learners; an exact merge needs each "
                         "example in one learner only (shard by example, e.g. ridge.row_digests(X) % n_shards)")
    return {"keys": np.concatenate([first["keys"], second["keys"]]),
            "sessions": pack(np.vstack([session_bits(first), session_bits(second)])),
            "labels": pack(np.vstack([label_bits(first), label_bits(second)])),
            "shape": first["shape"].copy()}
