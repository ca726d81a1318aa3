"""``python -m sb3_ppo_variants.zoo``: the same as the ``sb3-ppo-variants-zoo`` command."""

from sb3_ppo_variants.zoo.cli import main

if __name__ == "__main__":
    main()
