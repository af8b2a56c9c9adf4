"""The experiments, one ``get_config(variant)`` per file (see README, Training).

``configs/default.py`` holds the shared defaults; every other config starts from
``default.get_config()`` and changes only what differs. The folder is installed as
the package ``jlstm.configs`` (pyproject.toml maps it), so that the configs import
``jlstm.configs.default`` from anywhere and ``jlstm-train`` finds them without the
repository. With ``pip install -e .`` that package is this folder; a plain
``pip install .`` copies it, and a config file run from a checkout then derives
from the installed copy of default.py.
"""
