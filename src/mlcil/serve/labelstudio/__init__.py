"""``mlcil serve`` as a Label Studio ML backend: annotate in Label Studio, every annotation learnt live.

- :mod:`~mlcil.serve.labelstudio.config` — the labeling config's multi-label control (``Choices
  choice="multiple"`` or ``Taxonomy`` over a ``Text``) and its choices as service labels;
- :mod:`~mlcil.serve.labelstudio.backend` — annotations as teach / relabel / forget, config changes as
  new and forgotten labels, predictions in Label Studio's result format with calibrated scores;
- :mod:`~mlcil.serve.labelstudio.routes` — the protocol's routes under ``/labelstudio`` (:data:`router`),
  mounted by :func:`mlcil.serve.app.create_app` beside ``/v1`` on the same service.

Uses only the service's public domain methods (:class:`~mlcil.serve.service.TaggingService`).
"""

from mlcil.serve.labelstudio.backend import Backend, example_id, parse_example_id
from mlcil.serve.labelstudio.config import Choice, Control, label_name, parse_config
from mlcil.serve.labelstudio.routes import PREFIX, router

__all__ = ["Backend", "Choice", "Control", "PREFIX", "example_id", "label_name", "parse_config",
           "parse_example_id", "router"]
