"""Shared fixtures: a private firmware cache and results store per test session."""
from __future__ import annotations

import shutil

import pytest

EMULATED_BOARDS = ("qemu-f746", "qemu-f412", "qemu-h743", "netduinoplus2")

needs_arm_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc is not installed (scripts/install.sh installs it)",
)
needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None,
    reason="qemu-system-arm is not installed (scripts/install.sh installs it)",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--graphs", type=int, default=320, metavar="N",
                     help="random graphs in the kernels' differential test, tests/test_differential.py (default: 320)")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Firmware builds go to a cache of this test session, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TINYLAB_CACHE", str(tmp_path_factory.mktemp("tinylab-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Measurements taken by a test go to its own store, never results/lab.sqlite."""
    path = tmp_path / "lab.sqlite"
    monkeypatch.setenv("TINYLAB_STORE", str(path))
    return path
