"""lcnas: hardware-aware AutoML for fully dynamic (layer- and channel-skipping) networks."""

from __future__ import annotations

from ._env import environment_metadata
from ._version import __version__
from .checkpoint import load_model
from .models import create_model, list_models
from .pretrained import list_pretrained

__all__ = ["__version__", "create_model", "environment_metadata", "list_models", "list_pretrained", "load_model"]
