"""Sphinx configuration of the sb3-ppo-variants documentation (``make docs``).

The pages are Markdown (MyST) in this folder; the API pages are generated from the docstrings.
Nothing is fetched from the network: there is no intersphinx mapping.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# document the package of this checkout, also when another copy is installed
sys.path.insert(0, str(ROOT))

import sb3_ppo_variants  # noqa: E402

project = "sb3-ppo-variants"
author = "sb3-ppo-variants developers"
copyright = "sb3-ppo-variants developers"
version = release = sb3_ppo_variants.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: anchors for headings up to level 3, so that [text](page.md#a-heading) links resolve
myst_heading_anchors = 3

# autodoc: members in source order; type hints stay in the signatures (as the code writes them: in the parameter
# lists, class-level attribute annotations such as ``policy: ActorCriticPolicy`` would replace the argument types),
# one parameter per line when a signature is long
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
python_maximum_signature_line_length = 100
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"sb3-ppo-variants {release}"
