"""The rl_zoo3 hyperparameter files, ``<algo>.yml``; installed as the package ``sb3_ppo_variants.zoo_configs``.

This folder is the one copy of the YAML. The build maps it into the package (``package-dir`` in pyproject.toml), and
this file makes it a regular package so that an editable install can import it too. Read a file with
``sb3_ppo_variants.zoo.zoo_config(algo)``.
"""
