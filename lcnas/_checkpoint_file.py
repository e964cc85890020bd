"""Reading a checkpoint file: the format marker and the validating reader.

Apart from :mod:`lcnas.checkpoint` (which builds models) so that the shipped-weights package can
read files without depending on the model code that depends on it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .errors import CheckpointError

__all__ = ["FORMAT", "FORMAT_VERSION", "read_checkpoint"]

FORMAT = "lcnas-checkpoint"
FORMAT_VERSION = 1


def read_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint dict; one clear :class:`CheckpointError` for any bad file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; anything else is damaged or foreign
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated (not a torch zip archive); re-create it or use an earlier copy")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds pickled Python objects that a safe (weights_only) load refuses; "
            f"it was not written by lcnas. Details: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({str(e).splitlines()[0]}); "
                              "re-create it or use an earlier copy") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        bare_state_dict = isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values())
        hint = " It looks like a bare state_dict: build the model with lcnas.create_model and call load_state_dict." if bare_state_dict else ""
        raise CheckpointError(f"{str(path)!r} is not an lcnas checkpoint (no format={FORMAT!r} marker).{hint}")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {ckpt['format_version']}, "
                              f"newer than this lcnas ({__version__}) reads; upgrade lcnas")
    for key in ("model", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {str(path)!r} has no {key!r} entry; it is incomplete")
    return ckpt
