"""Where the corpora and token caches live, so every module and the Makefile agree on one directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV_VAR = "CLONE_DATA_DIR"


def data_dir() -> Path:
    """`$CLONE_DATA_DIR`, else `<repo>/.data` in a source checkout, else `~/.cache/clone/data`.

    The source-tree default matches the Makefile's stamps in `.data/`, so `make setup` and the
    library look in the same place without any configuration.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "clone").is_dir():
        return repo / ".data"
    return Path.home() / ".cache" / "clone" / "data"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
