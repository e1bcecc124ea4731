"""Memory estimates and the budget every learner checks before allocating its state.

The budget is, in order: an explicit value (a learner's ``memory_budget`` parameter), the environment
variable ``MLCIL_MEMORY_BUDGET``, or half of the memory this process may use (physical RAM, or the
cgroup limit when lower). Values are bytes (int), a size string ('8GB', '512MiB') or a fraction of
that memory (a float in (0, 1]).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlcil.errors import MlcilError

DEFAULT_FRACTION = 0.5
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1 << 10, "m": 1e6, "mb": 1e6, "mib": 1 << 20, "g": 1e9,
          "gb": 1e9, "gib": 1 << 30, "t": 1e12, "tb": 1e12, "tib": 1 << 40}


def available_memory() -> int:
    """Bytes this process may use: physical RAM, or the cgroup (v2 or v1) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def parse_size(value, name: str = "memory_budget") -> int:
    """Bytes from an int, a size string ('8GB', '1.5 GiB') or a fraction of available memory (0 < f ≤ 1)."""
    if isinstance(value, bool):
        raise MlcilError(f"{name}: expected bytes, a size like '8GB' or a fraction in (0, 1], got {value!r}")
    if isinstance(value, (int, float)):
        if 0 < value <= 1 and isinstance(value, float):
            return int(value * available_memory())
        if value >= 1:
            return int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if m and m[2].lower() in _UNITS:
            number = float(m[1])
            if not m[2] and 0 < number <= 1 and "." in m[1]:
                return int(number * available_memory())
            if number > 0:
                return int(number * _UNITS[m[2].lower()])
    raise MlcilError(f"{name}: expected bytes, a size like '8GB' or a fraction in (0, 1], got {value!r}")


def memory_budget(value=None) -> int:
    """The budget in bytes: ``value``, else $MLCIL_MEMORY_BUDGET, else half the available memory."""
    if value is not None:
        return parse_size(value)
    env = os.environ.get("MLCIL_MEMORY_BUDGET")
    if env:
        return parse_size(env, "MLCIL_MEMORY_BUDGET")
    return int(DEFAULT_FRACTION * available_memory())


def format_bytes(n: float) -> str:
    """'1.2 GB'-style size (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def check_budget(owner: str, needed: dict[str, int], budget=None, hint: str = "") -> int:
    """Raise a one-line :class:`MlcilError` when Σ ``needed`` (what -> bytes) exceeds the budget.

    Returns the total. ``hint`` names the parameter(s) to change.
    """
    total = int(sum(needed.values()))
    limit = memory_budget(budget)
    if total > limit:
        parts = ", ".join(f"{what} {format_bytes(b)}" for what, b in needed.items())
        raise MlcilError(
            f"{owner}: would need {format_bytes(total)} ({parts}), over the memory budget of {format_bytes(limit)}"
            f"{'; ' + hint if hint else ''} (or raise the budget: memory_budget=... or $MLCIL_MEMORY_BUDGET)"
        )
    return total
