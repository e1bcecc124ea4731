"""Prometheus metrics of one app: request counts and latency, predict batch sizes, the service's state."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlcil.serve.service import TaggingService

GAUGES = (("model_version", "Model version served by this process"),
          ("db_version", "Latest model version seen in the database"),
          ("state_bytes", "Bytes of sufficient statistics (G, B) in memory"),
          ("examples", "Examples in the served model"), ("labels", "Labels in the served model"),
          ("refreshes", "Model refreshes by this process"),
          ("refresh_seconds", "Seconds spent refreshing the model"),
          ("calibrations", "Calibrations written by this process"), ("snapshots", "Snapshots written by this process"),
          ("background_errors", "Failures of background work (refresh, calibration, snapshot)"))
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """One registry per app (two apps in one process do not share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mlcil_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("mlcil_request_seconds", "HTTP request latency", ["route"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.gauges = {name: Gauge(f"mlcil_{name}", text, registry=r) for name, text in GAUGES}
        self.taught = Counter("mlcil_taught_examples", "Examples acknowledged by teach in this process", registry=r)
        self.batch_rows = Histogram("mlcil_predict_batch_rows", "Rows scored together by one φ(X)ᵀW", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe(self, service: TaggingService) -> None:
        """Set the gauges from the service's published model and counters."""
        model, c = service.model, service.counters
        g = self.gauges
        g["model_version"].set(model.version)
        g["db_version"].set(c.db_version)
        g["state_bytes"].set(service.state_bytes)
        g["examples"].set(model.n_examples)
        g["labels"].set(len(model.labels))
        for name in ("refreshes", "refresh_seconds", "calibrations", "snapshots", "background_errors"):
            g[name].set(getattr(c, name))

    def text(self, service: TaggingService) -> bytes:
        """The Prometheus text exposition, gauges freshly observed."""
        self.observe(service)
        return generate_latest(self.registry)
