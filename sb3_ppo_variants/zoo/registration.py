"""Registration of our algorithms in rl_zoo3, and the location of the shipped hyperparameter files.

rl_zoo3 keeps its algorithms in one dict, ``rl_zoo3.utils.ALGOS``; ``rl_zoo3``, ``rl_zoo3.train``,
``rl_zoo3.enjoy``, ``rl_zoo3.exp_manager`` and ``rl_zoo3.record_video`` all import that same object by name, so
:func:`register_zoo` inserts into it in place (never rebinds it) and every module sees the new names. Likewise
for the samplers (``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER``, used by ``train -optimize``) and converters
(``HYPERPARAMS_CONVERTER``, used by ``train --trial-id``).

rl_zoo3's scripts compute their ``--algo`` choices (``choices=list(ALGOS.keys())``) when they build their
argument parser, inside ``train()``/``enjoy()``, so registration must happen before those functions run:
:mod:`sb3_ppo_variants.zoo.cli` does that.
"""

from __future__ import annotations

import importlib.resources
import sys
from typing import Any

from sb3_ppo_variants.masking.envs import register_masking_envs
from sb3_ppo_variants.registry import SAMPLER_NAME, ZOO_ALGOS
from sb3_ppo_variants.zoo.samplers import CONVERTERS, SAMPLERS

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover
    from importlib.abc import Traversable

#: The package that holds ``<algo>.yml``: the repository's top-level ``zoo_configs/`` folder, which the build maps to
#: ``sb3_ppo_variants/zoo_configs/`` (pyproject.toml's ``package-dir``; an editable install reads the folder itself).
CONFIG_PACKAGE = "sb3_ppo_variants.zoo_configs"


def _qualified_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _insert(registry: dict[str, Any], name: str, value: Any, registry_name: str) -> None:
    """Insert ``value`` under ``name``; accept the same object again (also after a module reload), refuse another."""
    existing = registry.get(name)
    if existing is not None and existing is not value and _qualified_name(existing) != _qualified_name(value):
        raise RuntimeError(
            f"rl_zoo3's {registry_name} already maps {name!r} to {_qualified_name(existing)}; "
            f"refusing to replace it with {_qualified_name(value)}"
        )
    registry[name] = value


def register_zoo() -> None:
    """Register ClipPPO, KLPenaltyPPO, REINFORCE and SPO in rl_zoo3 as ``clip_ppo``, ``kl_ppo``, ``reinforce`` and
    ``spo``, their masked variants as ``clip_ppo_mask``, ``kl_ppo_mask``, ``reinforce_mask`` and ``spo_mask``, the
    recurrent (LSTM) variants as ``clip_ppo_lstm``, ``kl_ppo_lstm``, ``reinforce_lstm`` and the masked recurrent ones
    as ``clip_ppo_lstm_mask``, ``kl_ppo_lstm_mask``, ``reinforce_lstm_mask`` (the masked ones with the unmasked
    algorithm's sampler and converter, :data:`~sb3_ppo_variants.registry.SAMPLER_NAME`), and the gymnasium ids of
    :mod:`sb3_ppo_variants.masking.envs` (rl_zoo3 registers the ``*NoVel`` ids itself, in ``rl_zoo3.import_envs``).

    Inserts the classes into ``rl_zoo3.utils.ALGOS`` and our samplers and converters into
    ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER``, in place. Idempotent: calling it
    again changes nothing. Call it before rl_zoo3 parses its command line (its ``--algo`` choices are computed then).

    :raises ImportError: if rl_zoo3 is not installed (``pip install "sb3-ppo-variants[zoo]"``)
    :raises RuntimeError: if rl_zoo3 already uses one of our names for something else
    """
    try:
        from rl_zoo3 import hyperparams_opt
        from rl_zoo3 import utils as zoo_utils
    except ImportError as exc:
        raise ImportError(
            'The rl_zoo3 integration needs rl_zoo3: install it with `pip install "sb3-ppo-variants[zoo]"`'
        ) from exc
    for name, algo_class in ZOO_ALGOS.items():
        sampler = SAMPLER_NAME.get(name, name)
        _insert(zoo_utils.ALGOS, name, algo_class, "ALGOS")
        _insert(hyperparams_opt.HYPERPARAMS_SAMPLER, name, SAMPLERS[sampler], "HYPERPARAMS_SAMPLER")
        _insert(hyperparams_opt.HYPERPARAMS_CONVERTER, name, CONVERTERS[sampler], "HYPERPARAMS_CONVERTER")
    register_masking_envs()


def zoo_config(algo: str) -> Traversable:
    """The hyperparameter file shipped with the package for ``algo`` (the repository's ``zoo_configs/<algo>.yml``).

    Use :func:`importlib.resources.as_file` for a path on disk (it is one already in a normal install).

    :param algo: A name of :data:`~sb3_ppo_variants.registry.ZOO_ALGOS`: ``clip_ppo``, ``kl_ppo``, ``reinforce``,
        ``spo``, their masked (``_mask``) variants, and the recurrent (``_lstm``) and masked recurrent (``_lstm_mask``)
        variants of the first three
    :raises ValueError: for another name
    :raises FileNotFoundError: if the installed package lacks the file (a broken build)
    """
    if algo not in ZOO_ALGOS:
        raise ValueError(f"No zoo config for {algo!r}: the package ships one for {', '.join(sorted(ZOO_ALGOS))}")
    try:
        resource = importlib.resources.files(CONFIG_PACKAGE) / f"{algo}.yml"
    except ModuleNotFoundError:
        resource = None
    if resource is None or not resource.is_file():
        raise FileNotFoundError(
            f"The hyperparameter file zoo_configs/{algo}.yml is missing from the installed sb3_ppo_variants package "
            f"({resource or CONFIG_PACKAGE + ' not found'}); install the package (`pip install .` or `pip install -e .`, "
            "not only the checkout on PYTHONPATH), or pass your own file with `-conf`"
        )
    return resource
