"""Adds ``sb3_ppo_variants.zoo_configs`` to the found packages; everything else is in pyproject.toml.

The hyperparameter files live in the top-level ``zoo_configs/`` folder, which pyproject.toml's ``package-dir`` maps to
``sb3_ppo_variants.zoo_configs``. pyproject.toml can list packages or find them, not both, and the finder does not
see a mapped folder, so the list is made here: every folder under ``sb3_ppo_variants/``, with or without an
``__init__.py`` (the namespace finder, which pyproject.toml's ``find`` used too), plus the mapped one.
"""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["sb3_ppo_variants*"]), "sb3_ppo_variants.zoo_configs"])
