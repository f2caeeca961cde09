"""Shared fixtures: a private firmware cache and results store per test session."""
from __future__ import annotations

import os
import shutil

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each of pytest -n's workers has a core of its own: torch (read as it starts, here and in
    # every process a test starts) keeps to one thread instead of one per core in every worker.
    os.environ["OMP_NUM_THREADS"] = "1"

EMULATED_BOARDS = ("qemu-f746", "qemu-f412", "qemu-h743", "netduinoplus2")

needs_arm_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc is not installed (scripts/install.sh installs it)",
)
needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None,
    reason="qemu-system-arm is not installed (scripts/install.sh installs it)",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `longest` run first: under pytest -n, a test of minutes that started last
    would keep one core busy long after the others have finished."""
    items.sort(key=lambda item: item.get_closest_marker("longest") is None)


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
