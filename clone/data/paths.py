"""Where the corpora and token caches live, so every module and the Makefile agree on one directory."""

from __future__ import annotations

import os
from pathlib import Path

from clone.atomic import write_bytes_atomic, write_text_atomic  # noqa: F401  (kept importable here)

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
