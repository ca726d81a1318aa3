"""``python -m sb3_ppo_variants.tuning``: the ``sb3-ppo-variants-tune`` command."""

import sys

from sb3_ppo_variants.tuning.cli import main

sys.exit(main())
