"""Label Studio labeling configs: the multi-label control mlcil learns, and how its choices map to labels.

A labeling config is XML (``<View>…</View>``). mlcil learns from one control over one text:

- ``<Choices name=… toName=… choice="multiple">`` with ``<Choice value=… hint=…/>`` children, or
- ``<Taxonomy name=… toName=…>`` with nested ``<Choice value=…/>`` (a node's label is its path,
  ``"Fruit > Apple"``; choosing a node makes its ancestors positive too),

whose ``toName`` is a ``<Text name=… value="$field"/>`` (the task's ``data[field]`` is the text).

Each choice is one service label. A service label name is one URL path segment, so the characters
'/' and '\\' of a choice value are written as '∕' (U+2215) and '⧵' (U+29F5), and a value '.' or '..'
gets a leading '_' (:func:`label_name`); :class:`Control` maps both ways.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from mlcil.serve.errors import Invalid

#: separator of a taxonomy node's path in its label name
PATH_SEP = " > "
#: controls mlcil can learn (Label Studio tag names, lower case)
CONTROLS = ("choices", "taxonomy")


@dataclass(frozen=True)
class Choice:
    """One label of the control: the service label ``name``, its Label Studio ``path`` (one value for
    Choices, root-to-node values for Taxonomy) and the ``hint`` (description; None = no zero-shot)."""

    name: str
    path: tuple[str, ...]
    hint: str | None = None


@dataclass(frozen=True)
class Control:
    """The control mlcil learns: its ``from_name``, the Text it labels (``to_name``), the task data key of
    the text (``data_key``), its ``kind`` ('choices' or 'taxonomy') and its ``choices`` (config order)."""

    from_name: str
    to_name: str
    data_key: str
    kind: str
    choices: tuple[Choice, ...]
    digest: str = field(default="", compare=False)

    @property
    def names(self) -> list[str]:
        """Service label names, in config order."""
        return [c.name for c in self.choices]

    def by_path(self) -> dict[tuple[str, ...], Choice]:
        return {c.path: c for c in self.choices}

    def known_labels(self, result: list[dict]) -> dict[str, int]:
        """{label: 1 | 0} of one annotation's ``result`` (Label Studio result items): every choice of this
        control is known, 1 where chosen (with its taxonomy ancestors), else 0 (an explicit negative).
        Items of other controls are ignored; a chosen value not in the config is an :class:`Invalid`."""
        chosen: set[tuple[str, ...]] = set()
        paths = self.by_path()
        for i, item in enumerate(result or []):
            if not isinstance(item, dict) or item.get("from_name") != self.from_name:
                continue
            value = item.get("value") or {}
            if self.kind == "choices":
                got = value.get("choices", [])
                if not isinstance(got, list) or not all(isinstance(v, str) for v in got):
                    raise Invalid(f"result[{i}].value.choices", "expected a list of strings")
                picked = [(v,) for v in got]
            else:
                got = value.get("taxonomy", [])
                if not isinstance(got, list) or not all(isinstance(p, list) and all(isinstance(v, str) for v in p)
                                                        for p in got):
                    raise Invalid(f"result[{i}].value.taxonomy", "expected a list of paths (lists of strings)")
                picked = [tuple(p) for p in got]
            for path in picked:
                if path not in paths:
                    raise Invalid(f"result[{i}].value", f"choice {PATH_SEP.join(path)!r} is not in the labeling "
                                                        f"config's {self.from_name!r}")
                for k in range(1, len(path) + 1):  # a taxonomy node implies its ancestors
                    if path[:k] in paths:
                        chosen.add(path[:k])
        return {c.name: int(c.path in chosen) for c in self.choices}

    def result(self, names: list[str]) -> list[dict]:
        """Label Studio result items choosing the labels ``names`` (service names; others ignored): one
        ``choices`` item, or one ``taxonomy`` item of the deepest chosen nodes; [] when none is chosen."""
        want = set(names)
        picked = [c for c in self.choices if c.name in want]
        if not picked:
            return []
        if self.kind == "choices":
            value = {"choices": [c.path[0] for c in picked]}
        else:
            paths = {c.path for c in picked}
            deepest = [p for p in paths if not any(q != p and q[:len(p)] == p for q in paths)]
            value = {"taxonomy": [list(p) for p in sorted(deepest, key=[c.path for c in picked].index)]}
        return [{"from_name": self.from_name, "to_name": self.to_name, "type": self.kind, "value": value}]


def label_name(value: str) -> str:
    """The service label name of a choice value (or taxonomy path joined by :data:`PATH_SEP`)."""
    name = value.replace("/", "\u2215").replace("\\", "\u29f5")
    return "_" + name if name in (".", "..") else name


def _choices(parent: ET.Element, prefix: tuple[str, ...], kind: str, out: list[Choice]) -> None:
    for child in parent:
        if child.tag.lower() != "choice":
            continue
        value = child.get("value", child.get("alias"))
        if value is None:
            raise Invalid("label_config", f"a <Choice> of {kind} has no value attribute")
        if value != value.strip() or not value:
            raise Invalid("label_config", f"choice {value!r}: empty, or leading or trailing white space")
        path = prefix + (value,)
        hint = child.get("hint") or child.get("description") or None
        out.append(Choice(label_name(PATH_SEP.join(path)), path, hint))
        if kind == "taxonomy":
            _choices(child, path, kind, out)


def parse_config(xml: str, control: str | None = None) -> Control:
    """The multi-label control of a labeling config (``control``: its name, when it has several).

    Raises :class:`Invalid` (field ``label_config``) when the XML is malformed, or has no
    multi-label Choices/Taxonomy over a Text, or several without ``control`` naming one."""
    if not isinstance(xml, str) or not xml.strip():
        raise Invalid("label_config", "expected the project's labeling config (XML), got nothing")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise Invalid("label_config", f"malformed XML: {exc}") from None
    texts = {el.get("name"): el.get("value", "") for el in root.iter() if el.tag.lower() == "text"}
    found = []
    for el in root.iter():
        kind = el.tag.lower()
        if kind not in CONTROLS or (control is not None and el.get("name") != control):
            continue
        if kind == "choices" and el.get("choice", "single").lower() != "multiple":
            continue
        to_name = el.get("toName", "")
        if to_name not in texts:
            continue
        found.append((el, kind, to_name))
    if not found:
        which = f"named {control!r} " if control else ""
        raise Invalid("label_config", f"no multi-label control {which}over a <Text>: mlcil learns a "
                                      "<Choices choice=\"multiple\" toName=…> or <Taxonomy toName=…> whose toName "
                                      "is a <Text name=… value=\"$field\">")
    if len(found) > 1:
        raise Invalid("label_config", f"{len(found)} multi-label controls ("
                                      f"{', '.join(el.get('name', '?') for el, _, _ in found)}): name the one "
                                      "mlcil learns (--labelstudio-control / MLCIL_LABELSTUDIO_CONTROL)")
    el, kind, to_name = found[0]
    value = texts[to_name]
    if not value.startswith("$") or len(value) < 2:
        raise Invalid("label_config", f"<Text name={to_name!r}> takes its text from {value!r}; expected "
                                      "value=\"$field\" (a task data key)")
    choices: list[Choice] = []
    _choices(el, (), kind, choices)
    seen: dict[str, tuple[str, ...]] = {}
    for c in choices:
        if c.name in seen:
            raise Invalid("label_config", f"choices {seen[c.name]} and {c.path} map to the same label {c.name!r}")
        seen[c.name] = c.path
    return Control(el.get("name", ""), to_name, value[1:], kind, tuple(choices),
                   hashlib.sha256(xml.encode("utf-8")).hexdigest()[:16])
