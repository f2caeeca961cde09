"""The lab installed from a wheel, outside the repository: its data ships inside the package and
it builds and runs firmware from any directory."""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import needs_arm_gcc, needs_qemu

REPO = Path(__file__).resolve().parents[1]
# What a wheel is built from: the project's metadata, its packages and the data folders it maps.
BUILD_INPUTS = ("pyproject.toml", "README.md", "engine", "hil", "nas", "tinylab_cli", "boards", "firmware_templates")
SHIPPED_DATA = {
    "engine/kernels/tl_kernels.h", "engine/kernels/tl_conv_s8.c", "engine/templates/model.c.j2",
    "hil/report/templates/report.html.j2", "hil/board_files/qemu-f746.yaml", "hil/firmware_templates/lab.h",
    "hil/firmware_templates/paint_stack.S", "hil/firmware_templates/soc/stm32f7.c.j2",
    "hil/firmware_templates/uart/cmsdk.c.j2",
}


def test_pyproject_lists_every_python_package() -> None:
    """pyproject lists packages by hand (to map the data folders): a new sub-package must be added."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {str(init.parent.relative_to(REPO)).replace("/", ".")
               for top in ("engine", "hil", "nas") for init in (REPO / top).rglob("__init__.py")}
    assert on_disk - listed == set(), "packages missing from pyproject's [tool.setuptools] packages"


def _copy_sources(target: Path) -> Path:
    """The files a wheel is built from, copied so that the build leaves nothing in the checkout."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in BUILD_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def _build_wheel(tmp_path: Path) -> Path:
    sources = _copy_sources(tmp_path / "src")
    out = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(out), str(sources)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(out.glob("tinylab-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _venv_reusing_installed_dependencies(path: Path) -> Path:
    """A new virtual environment whose site-packages also reads this interpreter's (numpy, torch,
    jinja2... are not installed twice); its own site-packages comes first. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # A path line in a .pth file is only added to sys.path: that folder's own .pth files (an
    # editable install of this repository) are not run, so the repository stays out of sight.
    Path(own, "_tinylab_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(TINYLAB_CACHE=str(tmp_path / "cache"), TINYLAB_STORE=str(tmp_path / "store" / "lab.sqlite"),
               XDG_DATA_HOME=str(tmp_path / "data"), PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.mark.slow
@needs_arm_gcc
@needs_qemu
def test_a_wheel_installed_elsewhere_builds_and_runs_firmware(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    contents = set(zipfile.ZipFile(wheel).namelist())
    assert SHIPPED_DATA - contents == set(), "data missing from the wheel"
    assert not any(name.startswith(("boards/", "firmware_templates/", "tests/")) for name in contents)

    venv = tmp_path / "venv"
    python = _venv_reusing_installed_dependencies(venv)
    env = _environment(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                                "--ignore-installed", "-q", str(wheel)],
                               cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)

    probe = run(str(python), "-c", "import hil, engine, hil.resources as r, hil.store.location as s; "
                "print(hil.__file__); print(engine.__file__); print(r.checkout_root()); "
                "print(r.boards_dir()); print(r.firmware_templates_dir()); print(s.default_store_path())")
    assert probe.returncode == 0, probe.stderr
    hil_file, engine_file, checkout, boards, templates, store = probe.stdout.split("\n")[:6]
    for path in (hil_file, engine_file, boards, templates):
        assert Path(path).is_relative_to(venv), f"{path} is not inside the new venv {venv}"
    assert checkout == "None"
    assert store == str(tmp_path / "data" / "tinylab" / "lab.sqlite")  # the user's data, not the package

    tinylab = str(venv / "bin" / "tinylab")
    selftest = run(tinylab, "selftest", "--board", "qemu-f412")
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr

    ran = run(tinylab, "run", "mcunet-tiny", "--board", "qemu-f746", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["matches_reference"] is True
    assert any((tmp_path / "cache").iterdir()), "the build cache is not the one TINYLAB_CACHE names"
