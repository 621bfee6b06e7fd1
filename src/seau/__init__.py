"""seau: users' files in object storage, one SQL row per file."""

__version__ = "0.1.0"
