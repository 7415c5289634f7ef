"""The package version (its own module, so that the CLI can name it without importing the package's API)."""

__version__ = "0.2.0"
