"""Open an HTML page in headless Chromium: take a screenshot, and read back how many of its
images loaded (the page records that on `load` in `<body data-images="...">`, as the report's
template does)."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import LabError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ENV = "TINYLAB_CHROMIUM"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IMAGES_ATTRIBUTE = re.compile(r'<body[^>]*\sdata-images="([^"]*)"', re.S)


class BrowserError(LabError):
    """Chromium is missing, failed, or the page did not load as it should."""


@dataclass(frozen=True)
class PageCheck:
    """What headless Chromium saw of a page."""

    page: Path
    total: int  # <img> elements
    loaded: int  # of them, complete with naturalWidth > 0
    broken: list[str] = field(default_factory=list)  # src of those that did not load
    screenshot: Path | None = None
    screenshot_size: tuple[int, int] = (0, 0)  # width, height in pixels

    @property
    def all_loaded(self) -> bool:
        return self.loaded == self.total


def find_chromium() -> str | None:
    """$TINYLAB_CHROMIUM, else the first Chromium or Chrome on PATH; None when there is none."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _chromium(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    binary = find_chromium()
    if binary is None:
        raise BrowserError("no Chromium found (install Debian's `chromium` package, or set "
                           f"${CHROMIUM_ENV} to a Chromium or Chrome binary)")
    with tempfile.TemporaryDirectory(prefix="tinylab-chromium-") as profile:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                   "--virtual-time-budget=10000", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise BrowserError(f"Chromium did not finish in {timeout_s:g} s: {' '.join(command)}") from None
        except OSError as error:
            raise BrowserError(f"cannot run {binary}: {error.strerror or error}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise BrowserError(f"Chromium exited with {done.returncode}: {' '.join(command)}\n{tail}")
    return done


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file; BrowserError when it is not one."""
    try:
        head = path.read_bytes()[:24]
    except OSError as error:
        raise BrowserError(f"cannot read {path}: {error.strerror or error}") from None
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise BrowserError(f"{path} is not a PNG image")
    return struct.unpack(">II", head[16:24])


def loaded_images(page: Path, *, timeout_s: float = 120.0) -> tuple[int, int, list[str]]:
    """(images, loaded, broken srcs) as the page recorded them once loaded (`--dump-dom`)."""
    dom = _chromium("--dump-dom", page.resolve().as_uri(), timeout_s=timeout_s).stdout
    match = _IMAGES_ATTRIBUTE.search(dom)
    if match is None:
        raise BrowserError(f"{page} does not record its images in <body data-images>: "
                           "is it a tinylab report?")
    text = html.unescape(match.group(1))
    if text == "pending":
        raise BrowserError(f"{page} did not finish loading in headless Chromium (its load event never ran)")
    try:
        record = json.loads(text)
        return int(record["total"]), int(record["loaded"]), [str(s) for s in record["broken"]]
    except (ValueError, KeyError, TypeError):
        raise BrowserError(f"{page} recorded its images as {text[:200]!r}, not the expected JSON") from None


def screenshot(page: Path, out: Path, *, window: tuple[int, int] = (1280, 2400),
               timeout_s: float = 120.0) -> tuple[int, int]:
    """Save a PNG screenshot of `page` to `out`; return its size. Refuses an empty one."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    _chromium(f"--screenshot={out}", f"--window-size={window[0]},{window[1]}", page.resolve().as_uri(),
              timeout_s=timeout_s)
    if not out.is_file() or out.stat().st_size == 0:
        raise BrowserError(f"Chromium wrote no screenshot of {page} to {out}")
    size = png_size(out)
    if size[0] == 0 or size[1] == 0:
        raise BrowserError(f"the screenshot {out} of {page} is empty ({size[0]}×{size[1]})")
    return size


def check_page(page: Path, shot: Path, *, window: tuple[int, int] = (1280, 2400),
               timeout_s: float = 120.0) -> PageCheck:
    """Load `page` headless, screenshot it to `shot`, and raise BrowserError unless every image
    loaded."""
    page = Path(page)
    if not page.is_file():
        raise BrowserError(f"no page at {page}")
    total, loaded, broken = loaded_images(page, timeout_s=timeout_s)
    size = screenshot(page, Path(shot), window=window, timeout_s=timeout_s)
    check = PageCheck(page=page, total=total, loaded=loaded, broken=broken, screenshot=Path(shot),
                      screenshot_size=size)
    if not check.all_loaded:
        raise BrowserError(f"{total - loaded} of {total} images in {page} did not load: {', '.join(broken)}")
    return check
