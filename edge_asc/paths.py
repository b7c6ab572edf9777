"""Where the default model and index are found, from a clone, an installed package or a deployment.

Search order for the model and the index: the environment variable, then the clone's top-level folder (models/,
index/), then the installed data folder ``<sys.prefix>/share/edge-asc/``, then ``/var/lib/edge-asc/``.
Enrolled places (``default_enrolled_path``) go somewhere writable instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edge_asc.contract import MANIFEST_FILE

DEFAULT_MODEL_NAME = "edge-asc-amb13.onnx"
DEFAULT_INDEX_NAME = "edge-asc-amb13"
MODEL_ENV = "EDGE_ASC_MODEL"
INDEX_ENV = "EDGE_ASC_INDEX"

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARE_DIR = Path(sys.prefix) / "share" / "edge-asc"
STATE_DIR = Path("/var/lib/edge-asc")


def _candidates(sub: str, name: str) -> list[Path]:
    return [REPO_ROOT / sub / name, SHARE_DIR / sub / name, STATE_DIR / sub / name]


def default_model_path() -> Path:
    """The first existing default model; if none exists, the clone's path (so errors name a real place)."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    found = [p for p in _candidates("models", DEFAULT_MODEL_NAME) if p.is_file()]
    return found[0] if found else _candidates("models", DEFAULT_MODEL_NAME)[0]


def default_index_path() -> Path:
    if os.environ.get(INDEX_ENV):
        return Path(os.environ[INDEX_ENV])
    found = [p for p in _candidates("index", DEFAULT_INDEX_NAME) if (p / MANIFEST_FILE).is_file()]
    return found[0] if found else _candidates("index", DEFAULT_INDEX_NAME)[0]


ENROLLED_ENV = "EDGE_ASC_ENROLLED"
ENROLLED_NAME = "enrolled"


def default_enrolled_path() -> Path:
    """Where enrolled places live: $EDGE_ASC_ENROLLED, else /var/lib/edge-asc/enrolled when /var/lib/edge-asc
    exists and is writable (systemd's StateDirectory=), else $XDG_DATA_HOME/edge-asc/enrolled (default
    ~/.local/share/edge-asc/enrolled). Never inside the base index, which may be read-only."""
    if os.environ.get(ENROLLED_ENV):
        return Path(os.environ[ENROLLED_ENV])
    if STATE_DIR.is_dir() and os.access(STATE_DIR, os.W_OK | os.X_OK):
        return STATE_DIR / ENROLLED_NAME
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "edge-asc" / ENROLLED_NAME
