"""Former name of :mod:`mlcil.serve.repository` (the database behind the tagging service); kept for imports."""

from mlcil.serve.repository import Store, Tx

__all__ = ["Store", "Tx"]
