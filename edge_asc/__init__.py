"""edge-asc: acoustic scene classification after 300 ms of audio."""

__version__ = "0.1.0"
