"""Sphinx configuration of the fastcnn documentation.

Build (from the repository root, after ``pip install ".[docs]"``)::

    python -m sphinx -W -n docs docs/_build/html

The examples gallery runs every script in ``examples/`` during the build, on real data:
CIFAR-10 from ``$FASTCNN_CIFAR10_DIR`` or ``$FASTCNN_HOME/datasets`` (default
``~/.fastcnn/datasets``), Fashion-MNIST from Debian's ``dataset-fashion-mnist``.
``FASTCNN_EXAMPLES_QUICK=1`` (the default here) makes them train on a few thousand images
for one or two epochs so the build takes a few minutes; ``FASTCNN_EXAMPLES_QUICK=0`` runs
them in full. ``-D plot_gallery=0`` skips running them. The benchmark charts are drawn from
the committed ``benchmarks/results/*.json``; the build never runs a benchmark.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # document the checkout (its extension built in place or installed)
sys.path.insert(0, os.path.join(HERE, "_ext"))

import fastcnn  # noqa: E402
import fastcnn_docs  # noqa: E402

os.environ.setdefault("FASTCNN_EXAMPLES_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
fastcnn_docs.point_examples_at_cifar10(os.path.join(HERE, "_build"))

project = "fastcnn"
author = "the fastcnn authors"
copyright = "2026, " + author
release = fastcnn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "fastcnn_docs",
]

exclude_patterns = ["_build", "hardening.md", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5",
                    "auto_examples/*.codeobj.json", "**.ipynb_checkpoints"]
templates_path = []
html_theme = "furo"
html_title = "fastcnn %s" % release
html_static_path = []
pygments_style = "sphinx"

# Keras-style docstrings: Args / Returns / Raises (Google style)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
autodoc_default_options = {}
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = True
autodoc_typehints = "none"
add_module_names = False

# -n: every cross-reference must resolve. These names come from outside fastcnn (the
# standard library, NumPy, argparse...), which the docs do not fetch inventories for.
nitpick_ignore = [("py:class", name) for name in (
    "numpy.ndarray", "ndarray", "array", "array-like", "array_like", "optional", "callable",
    "argparse.ArgumentParser", "argparse.Namespace", "list", "dict", "tuple", "int", "float",
    "str", "bool", "None", "object", "function", "numpy.random.Generator",
    "collections.namedtuple", "ValueError", "TypeError", "FileNotFoundError",
    "KeyboardInterrupt")] + [
    ("py:exc", name) for name in ("ValueError", "TypeError", "FileNotFoundError", "OSError",
                                   "KeyError", "RuntimeError", "AttributeError", "FileExistsError",
                                   "NotImplementedError", "ImportError")] + [
    ("py:func", "json.dumps"), ("py:mod", "argparse"),
    ("py:mod", "fastcnn.datasets._common")]  # private: its public names are in fastcnn.datasets

doctest_global_setup = "import numpy as np\nimport fastcnn"

sphinx_gallery_conf = {
    "examples_dirs": [os.path.join(ROOT, "examples")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r".*\.py$",   # run every example (not only plot_*.py)
    "ignore_pattern": r"__init__\.py|/_",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
}
