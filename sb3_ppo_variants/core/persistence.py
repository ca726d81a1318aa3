"""Saving and loading: the checks before SB3's ``load`` unpickles anything, and the files of earlier releases.

- :func:`check_model_file`: a clear error for a missing, truncated or corrupted file, or one that holds another of
  our algorithms' models (SB3 would load it silently into the wrong class).
- Release 0.1.0 wrote the fused-Adam choice into the stored ``policy_kwargs`` (:func:`stored_by_release_0_1`).
- Files written before ``numerics`` existed (0.1.0 and 0.2.0) chose the arithmetic through the optimizer: the NumPy
  paths ran only with a fused Adam/AdamW. :func:`numerics_of_earlier_release` reads the same choice off the loaded
  optimizer, so such a model keeps computing what it computed.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import warnings
import zipfile
from typing import Any

import torch as th


def numerics_of_earlier_release(optimizer: th.optim.Optimizer) -> str:
    """The ``numerics`` a model saved without that setting ran with: ``"fast"`` where its optimizer is a fused
    Adam/AdamW (our default then), ``"sb3"`` where the user chose another implementation or optimizer."""
    if type(optimizer) in (th.optim.Adam, th.optim.AdamW) and all(group.get("fused") for group in optimizer.param_groups):
        return "fast"
    return "sb3"


#: ``load()``'s marker for "no policy_kwargs given"
NOT_GIVEN = object()


def after_load(model: Any, data: dict[str, Any] | None, requested: Any, kwargs: dict[str, Any]) -> None:
    """What ``load()`` does after SB3's: the ``numerics`` of a file saved without it, and SB3's check of the
    ``policy_kwargs`` passed to ``load()`` (with its wording), which also accepts those a 0.1.0 file was built with."""
    if data is not None and "numerics" not in data and "numerics" not in kwargs:
        model.numerics = numerics_of_earlier_release(model.policy.optimizer)
    if requested is NOT_GIVEN or requested == model.policy_kwargs:
        return
    if not stored_by_release_0_1(model.policy_kwargs, requested):
        raise ValueError(
            f"The specified policy kwargs do not equal the stored policy kwargs."
            f"Stored kwargs: {model.policy_kwargs}, specified kwargs: {requested}"
        )
    model.policy_kwargs = requested


def stored_by_release_0_1(stored: dict[str, Any], requested: Any) -> bool:
    """Whether ``stored`` is ``requested`` with the fused/foreach Adam choice release 0.1.0 wrote into policy_kwargs."""
    if not isinstance(requested, dict):
        return False
    optimizer_kwargs = requested.get("optimizer_kwargs")
    if optimizer_kwargs is None:
        optimizer_kwargs = {"eps": 1e-5} if requested.get("optimizer_class", th.optim.Adam) is th.optim.Adam else {}
    return any(
        stored == {**requested, "optimizer_kwargs": {**optimizer_kwargs, implementation: True}}
        for implementation in ("fused", "foreach")
    )


def check_model_file(class_name: str, path: str | pathlib.Path | io.BufferedIOBase) -> dict[str, Any] | None:
    """Clear errors for a path that is not a complete saved model, or holds another algorithm's model; the model's
    ``data`` entry (None for a file object, which SB3 reads as it is)."""
    if not isinstance(path, (str, pathlib.Path)):
        return None
    path = str(path)
    if not os.path.exists(path) and os.path.exists(path + ".zip"):
        path += ".zip"
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r} (nor with '.zip' added): No such file or directory")
    data = _read_data(path)
    saved = data.get("_algorithm_name")
    if saved is None:
        warnings.warn(f"{path!r} was not saved by sb3-ppo-variants; loading it into {class_name} as SB3 would", stacklevel=3)
    elif saved != class_name:
        raise ValueError(f"{path!r} holds a {saved} model, not a {class_name} one: load it with {saved}.load()")
    return data


def _read_data(path: str) -> dict[str, Any]:
    """The ``data`` entry of a saved model's zip archive, after checking the archive is complete and intact."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise ValueError(
                    f"{path!r} is not a complete saved model: the 'data' or 'policy.pth' entry is missing "
                    "(truncated file, or not a model)"
                )
            if archive.testzip() is not None:
                raise ValueError(f"{path!r} is corrupted (CRC check failed)")
            return json.loads(archive.read("data"))
    except zipfile.BadZipFile as exc:
        # SB3's wording ("wasn't a zip-file") kept for code that matches it
        raise ValueError(
            f"Error: the file {path} wasn't a zip-file: not a saved model (not a zip archive, or a truncated one: {exc})"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} is not a saved model: its 'data' entry is not valid JSON ({exc})") from None
