"""The package version, in one place (read by pyproject.toml and every record the library writes)."""

__version__ = "0.2.0"
