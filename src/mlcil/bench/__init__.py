"""Benchmark harness: run learners on a protocol over seeds; write JSON, Markdown and a plot; audit
a stream's labels (:mod:`mlcil.bench.audit`)."""

from mlcil.bench.audit import audit_stream
from mlcil.bench.report import markdown, markdown_table, write_report
from mlcil.bench.runner import BenchConfig, evaluate_session, run_benchmark, run_learner

__all__ = ["BenchConfig", "audit_stream", "evaluate_session", "markdown", "markdown_table", "run_benchmark",
           "run_learner", "write_report"]
