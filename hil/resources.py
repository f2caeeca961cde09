"""Where the lab's own files and its results live.

The repository keeps `boards/` and `firmware_templates/` as top-level folders. A wheel ships them
inside the hil package, as `hil/board_files/` and `hil/firmware_templates/` (pyproject's
`[tool.setuptools.package-dir]` maps those sub-packages onto the top-level folders). In a checkout
the top-level folders are used, so edits there take effect at once; installed, importlib.resources
finds the copies in the package.

Results: in a checkout, the repository's `results/` folder; installed, $XDG_DATA_HOME/tinylab
(else ~/.local/share/tinylab). Build caches are engine.cache's ($TINYLAB_CACHE, else XDG cache).
"""
from __future__ import annotations

import os
from pathlib import Path

from engine.resources import package_dir

# The folder above the imported hil package: the repository in a checkout, site-packages otherwise.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
# top-level folder in the repository -> its name inside the hil package in a wheel
SHIPPED_FOLDERS = {"boards": "board_files", "firmware_templates": "firmware_templates"}
DATA_HOME_ENV = "XDG_DATA_HOME"


def checkout_root() -> Path | None:
    """The repository the hil package is imported from, or None when the lab is installed."""
    markers = [SOURCE_ROOT / "pyproject.toml", *(SOURCE_ROOT / name for name in SHIPPED_FOLDERS)]
    return SOURCE_ROOT if all(path.exists() for path in markers) else None


def lab_folder(name: str) -> Path:
    """`boards` or `firmware_templates`: the checkout's top-level folder, else the installed copy."""
    if name not in SHIPPED_FOLDERS:
        raise ValueError(f"unknown lab folder {name!r}; known: {', '.join(SHIPPED_FOLDERS)}")
    root = checkout_root()
    if root is not None:
        return root / name
    return package_dir("hil", SHIPPED_FOLDERS[name])


def boards_dir() -> Path:
    """The board files (<name>.yaml)."""
    return lab_folder("boards")


def firmware_templates_dir() -> Path:
    """The firmware harness templates (startup, linker script, drivers, command loop)."""
    return lab_folder("firmware_templates")


def report_templates_dir() -> Path:
    """hil/report/templates: the HTML report's jinja2 templates (a folder of the hil package, found
    without importing hil.report, which sits above this module)."""
    return package_dir("hil", "report/templates")


def user_data_dir() -> Path:
    """$XDG_DATA_HOME/tinylab, else ~/.local/share/tinylab: an installed lab's results."""
    base = os.environ.get(DATA_HOME_ENV) or os.path.expanduser("~/.local/share")
    return Path(base) / "tinylab"


def results_dir() -> Path:
    """Where the default store and reports go: the checkout's results/ folder when there is one,
    else the user's data folder (never inside an installed package)."""
    root = checkout_root()
    if root is not None and (root / "results").is_dir():
        return root / "results"
    return user_data_dir()
