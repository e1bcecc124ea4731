"""The service's configuration: the model's frame (:class:`Options`), hard bounds (:class:`Limits`) and
background work (:class:`Policy`). Plain values; the domain checks them and names each by its field
(what a command line calls them is the CLI's business: :class:`OptionError` carries the field)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlcil import ridge
from mlcil.errors import MlcilError

SCALINGS = ("l2", "none")
#: defaults of a new database (``Options`` fields left None take these)
DEFAULTS = {"d": None, "M": 1024, "seed": 0, "lam": "auto", "include_x": "auto", "scaling": "l2"}


class OptionError(MlcilError):
    """An option the service refuses: ``option`` (an :class:`Options` field) and the ``value`` given; either out
    of range (``expected`` says what is allowed) or contradicting an existing database (``contradicts``; the
    database's value is ``stored``). A command line names the option by its own flag."""

    def __init__(self, option: str, value: Any, message: str, *, expected: str | None = None,
                 stored: Any = None, contradicts: bool = False) -> None:
        super().__init__(message)
        self.option = option
        self.value = value
        self.expected = expected
        self.stored = stored
        self.contradicts = contradicts


@dataclass(frozen=True)
class Options:
    """The model's frame, fixed when the database is created (stored in its ``config`` table).

    None = unspecified: a new database takes :data:`DEFAULTS`, an existing one keeps its own. A
    value that contradicts an existing database is refused. d: embedding dimension (None = set by
    the first teach); M: random features; seed: of R; lam: ridge λ, or 'auto' (chosen by
    leave-one-out); include_x: also the scaled input as features (True, False or 'auto': only when
    d ≤ 1024, as the library does); scaling: 'l2' (unit rows; default) or 'none'.
    """

    d: int | None = None
    M: int | None = None
    seed: int | None = None
    lam: float | str | None = None
    include_x: bool | str | None = None
    scaling: str | None = None


@dataclass(frozen=True)
class Limits:
    """Hard bounds: embedding dimension, random features, labels, name length; memory budget of the state."""

    max_dim: int = 16384
    max_features: int = 16384
    max_labels: int = 10000
    max_name: int = 200
    memory_budget: Any = None


@dataclass(frozen=True)
class Policy:
    """Background work. Times in seconds."""

    background: bool = True
    refresh_interval: float = 1.0
    poll_s: float = 0.05
    calibrate: bool = True
    calib_rows: int = 2000
    calib_per_label: int = 200
    calib_growth: float = 1.25
    lam_growth: float = 2.0
    calib_min_interval: float = 10.0
    calib_min_rows: int = 10
    snapshot_rows_per_feature: float = 8.0
    snapshot_events: int = 5000
    snapshot_share: float = 0.5
    n_lambdas: int = 13


def validate(requested: dict[str, Any], limits: Limits) -> None:
    """Refuse requested option values out of range (:class:`OptionError` naming the field)."""
    def bad(key: str, expected: str) -> OptionError:
        return OptionError(key, requested[key], f"{key}: expected {expected}, got {requested[key]!r}",
                           expected=expected)

    if "d" in requested and not (isinstance(requested["d"], int) and 1 <= requested["d"] <= limits.max_dim):
        raise bad("d", f"1..{limits.max_dim}")
    if "M" in requested and not (isinstance(requested["M"], int) and 1 <= requested["M"] <= limits.max_features):
        raise bad("M", f"1..{limits.max_features}")
    lam = requested.get("lam", "auto")
    if not (lam == "auto" or (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0)):
        raise bad("lam", "'auto' or a finite λ > 0")
    if "include_x" in requested and requested["include_x"] not in (True, False, "auto"):
        raise bad("include_x", "true, false or auto")
    if "scaling" in requested and requested["scaling"] not in SCALINGS:
        raise bad("scaling", f"one of {', '.join(SCALINGS)}")


def contradiction(requested: dict[str, Any], stored: dict[str, Any], url: str) -> OptionError | None:
    """The first requested value that contradicts the stored frame of the database at ``url``, or None."""
    for key, value in requested.items():
        have = stored.get(key)
        if key == "include_x" and value == "auto" and isinstance(have, bool):
            continue  # 'auto' was resolved when d was set
        if have != value and not (key == "lam" and isinstance(have, (int, float)) and isinstance(value, (int, float))
                                  and math.isclose(have, value, rel_tol=1e-12)):
            return OptionError(key, value, f"{key} = {value} contradicts the database {url}, created with "
                                           f"{key} = {have}; leave {key} unset (or set it to {have}), or use a new "
                                           "database", stored=have, contradicts=True)
    return None


def resolve_include_x(include_x: bool | str, d: int) -> bool:
    """'auto' → whether d ≤ the ridge core's limit for including x (as the library does)."""
    return bool(d <= ridge.INCLUDE_X_MAX_FEATURES) if include_x == "auto" else bool(include_x)
