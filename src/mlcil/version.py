"""The package version (its own module, at the bottom of the layers, so that any module can read it)."""

__version__ = "0.1.0"
