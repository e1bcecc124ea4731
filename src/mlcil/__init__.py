"""mlcil: continual multi-label learning on frozen embeddings."""

from mlcil.errors import MlcilError

__version__ = "0.1.0"

__all__ = ["MlcilError", "__version__"]
