"""Where the results store is: a file path or a sqlite: URL, else $TINYLAB_STORE, else the default
(results/lab.sqlite in a checkout, the user's data folder when installed). The shared `--store`
option is in hil.store.option."""
from __future__ import annotations

import os
import re
from pathlib import Path

from hil.errors import StoreError
from hil.resources import results_dir

STORE_ENV = "TINYLAB_STORE"
STORE_FILE_NAME = "lab.sqlite"


def default_store_path() -> Path:
    """results/lab.sqlite in a checkout; installed, $XDG_DATA_HOME/tinylab/lab.sqlite
    (else ~/.local/share/tinylab/lab.sqlite)."""
    return results_dir() / STORE_FILE_NAME


DEFAULT_STORE_PATH = default_store_path()  # as resolved at import; resolve_store_path() asks again

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
SUPPORTED_LOCATIONS = "a file path, sqlite:///absolute/path or sqlite:relative/path"


def resolve_store_path(location: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite file a store location names: a path, `sqlite:///abs/path`,
    `sqlite:relative/path`; None means $TINYLAB_STORE, else `default_store_path()`."""
    if location is None:
        location = os.environ.get(STORE_ENV) or default_store_path()
    if isinstance(location, os.PathLike):
        return Path(location).expanduser().absolute()
    text = str(location).strip()
    if not text:
        raise StoreError(f"the results store location is empty; give {SUPPORTED_LOCATIONS}")
    if text.lower().startswith("sqlite:"):
        rest = text[len("sqlite:"):]
        if rest.startswith("//"):
            rest = rest[2:]
            if not rest.startswith("/"):
                raise StoreError(f"store URL {text!r} names a host; use sqlite:///absolute/path "
                                 "(three slashes) or sqlite:relative/path")
            rest = "/" + rest.lstrip("/")  # sqlite:////abs/path (SQLAlchemy's form) works too
        if not rest:
            raise StoreError(f"store URL {text!r} names no file")
        return Path(rest).expanduser().absolute()
    match = _URL_SCHEME.match(text)
    if match:  # name the scheme only: the URL may carry a password
        raise StoreError(f"unsupported results store scheme {match.group(1)!r}; "
                         f"supported: {SUPPORTED_LOCATIONS}")
    return Path(text).expanduser().absolute()
