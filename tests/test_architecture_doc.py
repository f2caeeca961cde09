"""docs/ARCHITECTURE.md stays true: every repository path it names in backticks exists."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ARCHITECTURE.md"
# Installed-wheel locations named for the reader; they exist only inside a wheel.
WHEEL_ONLY = {"hil/board_files/", "hil/firmware_templates/"}


def looks_like_repository_path(token: str) -> bool:
    """A token such as `engine/codegen.py` or `boards/`: with a folder separator, and no spaces or
    placeholders, not outside the repository. A bare file name (`model.c`, `lab.sqlite`) names
    what the code writes, not a file of the repository."""
    if re.search(r"[\s<>{}*~$]", token) or token.startswith(("../", "/", "-")):
        return False
    return "/" in token


def named_paths(text: str) -> list[str]:
    return [t for t in re.findall(r"`([^`\n]+)`", text) if looks_like_repository_path(t) and t not in WHEEL_ONLY]


def test_every_path_named_in_the_architecture_doc_exists() -> None:
    paths = named_paths(DOC.read_text())
    assert len(paths) > 40  # the map names its files
    missing = [p for p in paths if not (REPO / p).exists()]
    assert missing == [], f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_placeholders_and_outside_paths_are_not_checked() -> None:
    assert named_paths("`engine/codegen.py` `boards/<name>.yaml` `../shared/DESIGN.md` `-icount shift=0` "
                       "`model.c` `engine.codegen`") == ["engine/codegen.py"]
