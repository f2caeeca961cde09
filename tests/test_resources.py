"""Where the lab finds its own files and puts its results: a checkout, or an installed package."""
from __future__ import annotations

from pathlib import Path

import pytest

import engine.codegen.generator
import hil.firmware_build.firmware
import hil.resources as resources
from engine.resources import kernels_dir, package_dir, templates_dir
from hil.store.location import default_store_path, resolve_store_path

REPO = Path(__file__).resolve().parents[1]


def test_in_a_checkout_the_top_level_folders_are_used() -> None:
    assert resources.checkout_root() == REPO
    assert resources.boards_dir() == REPO / "boards"
    assert resources.firmware_templates_dir() == REPO / "firmware_templates"
    assert hil.firmware_build.firmware.TEMPLATES_DIR == REPO / "firmware_templates"
    assert resources.results_dir() == REPO / "results"


def test_the_engine_files_are_real_directories_inside_the_package() -> None:
    assert kernels_dir() == REPO / "engine" / "kernels" == engine.codegen.generator.KERNELS_DIR
    assert (kernels_dir() / "tl_kernels.h").is_file()
    assert (templates_dir() / "model.c.j2").is_file()
    assert (resources.report_templates_dir() / "report.html.j2").is_file()


def test_a_missing_data_folder_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="engine has no 'nowhere' folder.*reinstall tinylab"):
        package_dir("engine", "nowhere")
    with pytest.raises(ValueError, match="unknown lab folder 'results'"):
        resources.lab_folder("results")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab as if imported from site-packages: no repository beside the hil package."""
    monkeypatch.setattr(resources, "SOURCE_ROOT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def test_installed_the_board_files_come_from_the_package(installed: Path) -> None:
    assert resources.checkout_root() is None
    # in this checkout the package holds no copy (the wheel adds hil/board_files): the error says so
    with pytest.raises(FileNotFoundError, match="hil has no 'board_files' folder"):
        resources.boards_dir()


def test_installed_the_store_goes_to_the_users_data_folder(installed: Path, monkeypatch) -> None:
    monkeypatch.delenv("TINYLAB_STORE", raising=False)
    expected = installed / "data" / "tinylab" / "lab.sqlite"
    assert default_store_path() == expected
    assert resolve_store_path(None) == expected
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(installed / "home"))
    assert resolve_store_path(None) == installed / "home" / ".local" / "share" / "tinylab" / "lab.sqlite"


def test_the_store_variable_still_wins_when_installed(installed: Path, monkeypatch) -> None:
    monkeypatch.setenv("TINYLAB_STORE", str(installed / "mine.sqlite"))
    assert resolve_store_path(None) == installed / "mine.sqlite"
    assert resolve_store_path(str(installed / "given.sqlite")) == installed / "given.sqlite"


def test_a_checkout_without_results_folder_uses_the_users_data_folder(tmp_path: Path, monkeypatch) -> None:
    for name in ("boards", "firmware_templates"):
        (tmp_path / name).mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(resources, "SOURCE_ROOT", tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert resources.checkout_root() == tmp_path
    assert resources.boards_dir() == tmp_path / "boards"
    assert resources.results_dir() == tmp_path / "data" / "tinylab"
    (tmp_path / "results").mkdir()
    assert resources.results_dir() == tmp_path / "results"
