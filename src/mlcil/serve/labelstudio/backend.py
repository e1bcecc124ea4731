"""Label Studio's ML backend calls translated into the tagging service's domain calls.

One :class:`Backend` per app. It holds no model of its own: the labels are the service's labels
(:meth:`~mlcil.serve.service.TaggingService.create_label` / ``forget_label``), each annotation is one
service example (``teach`` / ``forget_examples``), predictions are the service's published model.

- **Examples.** Annotation ``a`` of project ``p`` is the example ``labelstudio:<p>:<a>`` (its task's
  text embedded by the app's encoder). Created → taught (an id already stored is relabelled
  exactly); updated → relabelled; deleted → forgotten; skipped (``was_cancelled``) → nothing taught
  (and forgotten, if it had been taught before it was skipped). Every choice of the labeling config
  is *known* for the annotation: 1 where chosen, 0 (an explicit negative) where not.
- **Labels follow the config** (:meth:`Backend.sync`, on every call that carries it: /setup, /predict,
  the webhooks). A new choice is a new label; annotations made before it existed are *absent* for
  it (never told), until an annotator updates them. A choice with a ``hint`` gets a name example
  from its value and hint (zero-shot scores before its first annotation), when the app has a text
  encoder. A choice removed from the config is forgotten (compared with the previous config this
  process saw for the project: a choice removed while no backend process ran stays).
- **Scores.** Each prediction's ``score`` is the probability that the whole predicted label set is
  right, Π_c (p_c if c is chosen else 1 − p_c) over the config's choices, from the service's
  calibrated per-label probabilities p_c (labels taken as independent): sorting tasks by prediction
  score, ascending, puts the least certain first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from mlcil.serve.errors import Conflict, Invalid, NotFound, NotReady
from mlcil.serve.labelstudio.config import PATH_SEP, Control, parse_config
from mlcil.serve.service import TaggingService

#: example ids of annotations: ``labelstudio:<project>:<annotation>``
ID_PREFIX = "labelstudio:"
#: the events of Label Studio's webhook that teach or forget
TEACH_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
FORGET_EVENTS = ("ANNOTATIONS_DELETED",)
CONFIG_EVENTS = ("PROJECT_UPDATED", "START_TRAINING")

Encode = Callable[[list], np.ndarray]


def example_id(project: int | str, annotation: int | str) -> str:
    """The service example id of annotation ``annotation`` of project ``project``."""
    return f"{ID_PREFIX}{project}:{annotation}"


def parse_example_id(ext: str) -> tuple[str, str] | None:
    """(project, annotation) of an example id made by :func:`example_id`; None for other ids."""
    if not ext.startswith(ID_PREFIX):
        return None
    parts = ext[len(ID_PREFIX):].split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def project_id(value: Any, field: str = "project") -> str:
    """The project id of Label Studio's ``project`` field: an id, ``"<id>.<created timestamp>"`` (what
    /setup and /predict send) or a serialised project ``{"id": …}`` (what webhooks send)."""
    if isinstance(value, dict):
        value = value.get("id")
        field += ".id"
    if isinstance(value, bool) or value is None:
        raise Invalid(field, "expected the Label Studio project id")
    text = str(value).split(".", 1)[0]
    if not text.isdigit():
        raise Invalid(field, f"expected a Label Studio project id (digits), got {value!r}")
    return text


def version_name(version: int) -> str:
    """The ``model_version`` Label Studio sees for service model version ``version``."""
    return f"mlcil-v{version}"


@dataclass
class Outcome:
    """What one webhook call did: the service version written (None: nothing) and a status word."""

    status: str
    version: int | None = None
    taught: int = 0
    forgotten: int = 0

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "taught": self.taught, "forgotten": self.forgotten}
        if self.version is not None:
            out["version"] = self.version
            out["model_version"] = version_name(self.version)
        return out


class Backend:
    """Label Studio's ML backend over a :class:`TaggingService`.

    ``encode``: texts (list of str) -> n×d embeddings (the app's input encoder; None: every call
    that needs a text refuses with a clear error). ``names``: the text encoder for zero-shot name
    examples (None: none). ``control``: the name of the control to learn when a config has several.
    """

    def __init__(self, service: TaggingService, encode: Encode | None, names: Encode | None = None,
                 control: str | None = None) -> None:
        self.service = service
        self.encode = encode
        self.names = names
        self.control_name = control
        self._lock = threading.Lock()
        self._controls: dict[str, Control] = {}  # project id -> last config seen
        self._tasks: dict[str, int] = {}  # example id -> task id (as taught by this process)

    # ---- labels --------------------------------------------------------------------------
    def control(self, project: str, label_config: str | None) -> Control:
        """The project's control: parsed from ``label_config`` (and synced) when given, else the last seen."""
        if label_config:
            return self.sync(project, label_config)
        try:
            return self._controls[project]
        except KeyError:
            raise Conflict("label_config", f"project {project} has not been set up with this backend yet "
                                           "(connect it in Label Studio, or send its label_config)") from None

    def sync(self, project: str, label_config: str) -> Control:
        """Make the service's labels follow the config: create new choices (a name example for a choice with
        a hint), forget choices removed since the config last seen for this project. Returns the control."""
        control = parse_config(label_config, self.control_name)
        before = self._controls.get(project)
        if before is not None and before.digest == control.digest:
            return before
        with self._lock:
            before = self._controls.get(project)
            if before is not None and before.digest == control.digest:
                return before
            _, listing = self.service.labels()
            have = {row["name"] for row in listing}
            for choice in control.choices:
                if choice.name in have:
                    continue
                vector = self._name_vector(choice.path, choice.hint) if choice.hint else None
                try:
                    self.service.create_label(choice.name, choice.hint, None, vector)
                except Conflict:  # another process created it meanwhile
                    pass
            if before is not None:
                for name in sorted(set(before.names) - set(control.names)):
                    try:
                        self.service.forget_label(name)
                    except NotFound:  # another process forgot it first
                        pass
            self._controls[project] = control
        return control

    def _name_vector(self, path: tuple[str, ...], hint: str) -> np.ndarray | None:
        """A choice's words and hint embedded by the text encoder ('cooking-time' -> 'cooking time')."""
        if self.names is None:
            return None
        words = " ".join(path).replace("_", " ").replace("-", " ")
        vec = np.asarray(self.names([f"{words}: {hint}"]), dtype=np.float32)
        if vec.ndim != 2 or vec.shape[0] != 1:
            raise Invalid("hint", f"text encoder returned shape {vec.shape}, expected (1, d)")
        return vec[0]

    # ---- texts ---------------------------------------------------------------------------
    def texts(self, control: Control, tasks: list[dict], field: str = "tasks") -> list[str]:
        """The text of each task (``task.data[<the Text's $field>]``)."""
        out = []
        for i, task in enumerate(tasks):
            data = task.get("data") if isinstance(task, dict) else None
            if not isinstance(data, dict):
                raise Invalid(f"{field}[{i}].data", "expected the task's data object")
            text = data.get(control.data_key)
            if not isinstance(text, str):
                raise Invalid(f"{field}[{i}].data.{control.data_key}",
                              f"expected the task's text (a string), got {type(text).__name__}")
            out.append(text)
        return out

    def embed(self, texts: list[str], field: str) -> np.ndarray:
        """n×d float32 embeddings of ``texts`` by the app's encoder."""
        if self.encode is None:
            raise Conflict(field, "mlcil serve embeds Label Studio's texts with its encoder, and none is "
                                  "configured: start it with --encoder minilm")
        X = np.asarray(self.encode(list(texts)), dtype=np.float32)
        if X.ndim != 2 or X.shape[0] != len(texts) or not np.isfinite(X).all():
            raise Invalid(field, f"the encoder returned shape {X.shape} (or non-finite values) for {len(texts)} texts")
        return X

    # ---- /setup and /predict ---------------------------------------------------------------
    def model_version(self, wait_s: float = 0.0) -> str:
        """The model version Label Studio should ask predictions of: the served one, after waiting up to
        ``wait_s`` for the database's latest (so that a fresh annotation is in the next prediction)."""
        version = self.service.served_version()
        if wait_s > 0:
            latest = self.service.latest_version()
            if latest > version:
                try:
                    version = self.service.wait_for(latest, wait_s).version
                except NotReady:
                    version = self.service.served_version()
        return version_name(version)

    def predict(self, project: str, label_config: str | None, tasks: list[dict]) -> list[dict]:
        """One prediction per task, in Label Studio's format: {result, score, model_version}."""
        if not isinstance(tasks, list):
            raise Invalid("tasks", "expected a list of tasks")
        control = self.control(project, label_config)
        if not tasks:
            return []
        texts = self.texts(control, tasks)
        model = self.service.model
        if self.service.dim is None or model.ridge is None:  # nothing taught yet: nothing to predict
            return [{"result": [], "score": 0.0, "model_version": version_name(model.version)} for _ in tasks]
        X = self.embed(texts, "tasks")
        model, scores = self.service.predict(X)
        P = model.proba(scores)
        decided = model.decide(P)
        col = {name: j for j, name in enumerate(model.names)}
        cols = [col[name] for name in control.names if name in col]
        out = []
        for i in range(len(tasks)):
            chosen = set(decided[i])
            p = P[i, cols]
            right = np.where([model.names[j] in chosen for j in cols], p, 1.0 - p)
            score = float(np.exp(np.log(np.clip(right, 1e-300, 1.0)).sum())) if cols else 0.0
            out.append({"result": control.result(decided[i]), "score": score,
                        "model_version": version_name(model.version)})
        return out

    # ---- webhooks: learning ----------------------------------------------------------------
    def webhook(self, payload: dict) -> Outcome:
        """Apply one webhook call of Label Studio (its ``action`` and payload)."""
        if not isinstance(payload, dict):
            raise Invalid("body", "expected a JSON object")
        action = payload.get("action")
        if action in TEACH_EVENTS:
            project = project_id(payload.get("project"))
            config = (payload.get("project") or {}).get("label_config")
            control = self.control(project, config)
            annotations = payload.get("annotation")
            tasks = payload.get("task")
            if action == "ANNOTATIONS_CREATED":
                if not isinstance(annotations, list) or not isinstance(tasks, list):
                    raise Invalid("annotation", "expected lists of annotations and tasks")
            else:
                annotations, tasks = [annotations], [tasks]
            by_id = {t.get("id"): t for t in tasks if isinstance(t, dict)}
            pairs = []
            for i, ann in enumerate(annotations):
                if not isinstance(ann, dict) or "id" not in ann:
                    raise Invalid(f"annotation[{i}]", "expected an annotation object with an id")
                task_ref = ann.get("task")
                task = by_id.get(task_ref if not isinstance(task_ref, dict) else task_ref.get("id"))
                if task is None and len(tasks) == 1:
                    task = tasks[0]
                if not isinstance(task, dict):
                    raise Invalid(f"annotation[{i}].task", "the annotation's task is missing from the payload")
                pairs.append((ann, task))
            return self.teach(project, control, pairs)
        if action in FORGET_EVENTS:
            project = project_id(payload.get("project"))
            anns = payload.get("annotations")
            if not isinstance(anns, list):
                raise Invalid("annotations", "expected a list of annotations ({id})")
            ids = [example_id(project, a.get("id") if isinstance(a, dict) else a) for a in anns]
            return self.forget(ids)
        if action in CONFIG_EVENTS:
            project = payload.get("project")
            if isinstance(project, dict) and project.get("label_config"):
                self.sync(project_id(project), project["label_config"])
            return Outcome("synced" if action == "PROJECT_UPDATED" else "live: every annotation is already learnt")
        return Outcome("ignored")

    def teach(self, project: str, control: Control, pairs: list[tuple[dict, dict]]) -> Outcome:
        """Teach (or relabel) the annotations of ``pairs`` (annotation, task); skipped ones are forgotten."""
        skipped = [example_id(project, a["id"]) for a, _ in pairs if a.get("was_cancelled")]
        keep = [(a, t) for a, t in pairs if not a.get("was_cancelled")]
        outcome = self.forget(skipped, status="skipped") if skipped else Outcome("skipped")
        if not keep:
            return outcome
        ids = [example_id(project, a["id"]) for a, _ in keep]
        labels = [control.known_labels(a.get("result") or []) for a, _ in keep]
        try:  # relabel first: stored annotations need no embedding
            _, version = self.service.teach([None] * len(keep), labels, ids)
        except Invalid as exc:  # some annotation is not stored yet: embed them all and teach
            if not exc.field.endswith(".vector"):
                raise
            X = self.embed(self.texts(control, [t for _, t in keep], "task"), "task")
            try:
                _, version = self.service.teach(list(X), labels, ids)
            except Conflict as conflict:  # stored meanwhile, or re-embedded with other last bits: relabel
                if not conflict.field.endswith(".vector"):
                    raise
                _, version = self.service.teach([None] * len(keep), labels, ids)
        for ext, (_, task) in zip(ids, keep):
            if isinstance(task.get("id"), int):
                self._tasks[ext] = task["id"]
        return Outcome("taught", version, taught=len(keep), forgotten=outcome.forgotten)

    def forget(self, ids: list[str], status: str = "forgotten") -> Outcome:
        """Forget the stored examples among ``ids`` (unknown ids are skipped)."""
        ids = list(dict.fromkeys(ids))
        report = getattr(self.service, "forget_report", None)
        if report is not None and ids:  # the service says which ids were stored
            version, removed, _ = report(ids)
            for ext in removed:
                self._tasks.pop(ext, None)
            return Outcome(status, version if removed else None, forgotten=len(removed))
        while ids:  # a service whose forget_examples refuses unknown ids (NotFound naming ids[i])
            try:
                version = self.service.forget_examples(ids)
                for ext in ids:
                    self._tasks.pop(ext, None)
                return Outcome(status, version, forgotten=len(ids))
            except NotFound as exc:  # "ids[i]": drop the unknown one and retry
                try:
                    i = int(exc.field.split("[")[1].rstrip("]"))
                except (IndexError, ValueError):
                    raise exc from None
                ids.pop(i)
        return Outcome(status)

    # ---- the label-error audit ---------------------------------------------------------------
    def audit(self, project: str, label: str | None, limit: int) -> dict[str, Any]:
        """Annotations of ``project`` whose label looks wrong: the service's leave-one-out audit
        (:meth:`~mlcil.serve.service.TaggingService.suspicious`) for ``label`` (None: every choice of
        the project's config), flagged ones first."""
        control = self.control(project, None)
        names = [label] if label is not None else control.names
        paths = {c.name: PATH_SEP.join(c.path) for c in control.choices}
        rows = []
        version = None
        for name in names:
            found = self.service.suspicious(name, limit=limit)
            version = found["version"]
            for ex in found["examples"]:
                parsed = parse_example_id(ex["id"])
                if parsed is None or parsed[0] != project:
                    continue
                rows.append({"annotation": int(parsed[1]), "task": self._tasks.get(ex["id"]),
                             "choice": paths.get(name, name), "given": ex["given"], "quality": ex["quality"],
                             "flagged": ex["flagged"]})
        rows.sort(key=lambda r: (not r["flagged"], r["quality"]))
        return {"project": int(project), "version": version, "annotations": rows[:limit]}
