"""Learner specs: ``'name'`` or ``'name:key=value,key=value'`` -> a configured Learner."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from mlcil.errors import MlcilError
from mlcil.learners.base import REGISTRY, Learner


def _coerce(value: str, default: Any, key: str, name: str, annotation: Any = None) -> Any:
    """Convert a spec string to the type of the parameter's default.

    A parameter annotated ``Any`` or with ``str`` in its annotation keeps a value that does not
    convert (e.g. ``pseudo_threshold=calibrated`` next to a float default).
    """
    text_ok = annotation in (Any, "Any") or "str" in str(annotation)
    if not isinstance(default, bool) and "bool" in str(annotation) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # e.g. include_x: bool | str = 'auto'
    try:
        if isinstance(default, bool):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if default is None:  # optional parameter: best guess
            for cast in (int, float):
                try:
                    return cast(value)
                except ValueError:
                    pass
            return None if value.lower() == "none" else value
    except ValueError as exc:
        if text_ok and not isinstance(default, bool):
            return value
        raise MlcilError(f"learner {name}: {key}={value!r}: {exc}") from None
    return value


def parse_learner_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``'analytic:strategy=weighted,M=4096'`` into ('analytic', {...}) with typed values."""
    spec = spec.strip()
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MlcilError(f"learner: unknown name {name!r}{hint} (registered: {', '.join(sorted(REGISTRY))})")
    params = inspect.signature(REGISTRY[name].__init__).parameters
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise MlcilError(f"learner {name}: expected key=value, got {item!r}")
        if key not in params or key == "self":
            valid = sorted(p for p in params if p != "self")
            raise MlcilError(f"learner {name}: unknown parameter {key!r}; expected one of {', '.join(valid)}")
        kwargs[key] = _coerce(value.strip(), params[key].default, key, name, params[key].annotation)
    return name, kwargs


def make_learner(spec: str, **overrides: Any) -> Learner:
    """Build a learner from its spec; ``overrides`` (e.g. seed, device) apply where the learner
    has that parameter and the spec did not set it."""
    name, kwargs = parse_learner_spec(spec)
    params = inspect.signature(REGISTRY[name].__init__).parameters
    for key, value in overrides.items():
        if key in params and key not in kwargs and value is not None:
            kwargs[key] = value
    return REGISTRY[name](**kwargs)


def resolve_learner_names(specs: str) -> list[str]:
    """Comma-separated learner specs, ``all`` expanding to every registered learner.

    Commas inside one spec's options are kept: ``'joint,analytic:M=64,alpha=0.1'`` ->
    ['joint', 'analytic:M=64,alpha=0.1'] (an item with '=' continues the previous spec).
    """
    out: list[str] = []
    for item in (p.strip() for p in specs.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item and out:
            out[-1] += "," + item
        elif item.lower() == "all":  # every learner this installation can run (torch ones need mlcil[torch])
            out.extend(n for n in REGISTRY.available() if n not in out)
        else:
            out.append(item)
    if not out:
        raise MlcilError("learners: expected at least one learner name")
    for spec in out:
        parse_learner_spec(spec)
    return out
