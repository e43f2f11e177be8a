"""One root for every sysfs/debugfs/procfs access, so tests and `--fake-board` can swap the board.

Every read, write, glob and existence check of the Jetson backend goes through a `SysfsRoot`. Paths
are always given as they appear on the board ("/sys/class/devfreq/..."); the root maps them into a
directory (default "/", or $CLONE_SYSFS_ROOT, or an argument). Writes are recorded in order, which is
what tests assert and what `dry_run` prints instead of touching the board.

Plain files cannot refuse a write the way the kernel does (EINVAL for min > max, a rate the BPMP does
not list), so a root may carry a `WriteHook`: it checks a write before it lands and may update other
files after it (cur_freq following min/max). A fake tree made by clone.runtime.jetson.faketree leaves a
marker file that installs its kernel emulation automatically.
"""

from __future__ import annotations

import errno
import glob as _glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ENV_ROOT = "CLONE_SYSFS_ROOT"
FAKE_MARKER = ".clone-fake-board.json"


class WriteHook(Protocol):
    def check(self, sysfs: "SysfsRoot", path: str, value: str) -> None:
        """Raise OSError (EINVAL, EACCES, ...) to refuse a write, as the kernel would."""

    def after(self, sysfs: "SysfsRoot", path: str, value: str) -> None:
        """Side effects of an accepted write (e.g. cur_freq clamped into [min, max])."""


@dataclass(frozen=True)
class Write:
    path: str
    value: str
    ok: bool = True
    error: str | None = None


class SysfsRoot:
    """Maps board paths into a root directory and records writes."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        dry_run: bool = False,
        read_only: bool = False,
        hook: WriteHook | None = None,
    ) -> None:
        chosen = root if root is not None else os.environ.get(ENV_ROOT) or "/"
        self.root = Path(chosen).expanduser().resolve()
        self.dry_run = dry_run
        self.forced_read_only = read_only
        self.writes: list[Write] = []
        self.hook = hook if hook is not None else self._fake_hook()

    # -- mapping -----------------------------------------------------------------------------------

    @property
    def is_host_root(self) -> bool:
        return self.root == Path("/")

    def real(self, path: str) -> Path:
        """Host path of a board path (board paths are absolute)."""
        rel = str(path).lstrip("/")
        return self.root / rel if rel else self.root

    def board(self, real: str | os.PathLike) -> str:
        """Board path of a host path under the root."""
        rel = os.path.relpath(os.fspath(real), self.root)
        if rel == ".":
            return "/"
        if rel.startswith(".."):
            raise ValueError(f"{real} is outside the sysfs root {self.root}")
        return "/" + rel.replace(os.sep, "/")

    def realpath(self, path: str) -> str:
        """Board path with symlinks resolved (links inside a fake tree must be relative); a link
        leading out of the root (an absolute link in a copied tree) leaves the path as given."""
        try:
            return self.board(os.path.realpath(self.real(path)))
        except ValueError:
            return path

    def __repr__(self) -> str:
        return f"SysfsRoot({str(self.root)!r}, dry_run={self.dry_run})"

    # -- reads -------------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return self.real(path).exists()

    def is_dir(self, path: str) -> bool:
        return self.real(path).is_dir()

    def is_file(self, path: str) -> bool:
        return self.real(path).is_file()

    def read(self, path: str) -> str:
        """File contents without surrounding whitespace; device-tree strings lose trailing NULs."""
        with open(self.real(path), "rb") as f:
            data = f.read()
        return data.decode("utf-8", "replace").strip().strip("\x00").strip()

    def read_optional(self, path: str) -> str | None:
        try:
            return self.read(path)
        except OSError:
            return None

    def read_int(self, path: str) -> int:
        raw = self.read(path)
        text = raw.split()[0] if raw else ""
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{path}: expected an integer, got {text!r}") from None

    def read_ints(self, path: str) -> list[int]:
        return [int(x) for x in self.read(path).split()]

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.real(path)))
        except OSError:
            return []

    def glob(self, pattern: str) -> list[str]:
        """Board paths matching a glob pattern, sorted."""
        hits = _glob.glob(os.fspath(self.real(pattern)))
        return sorted(self.board(h) for h in hits)

    # -- writes ------------------------------------------------------------------------------------

    def writable(self, path: str) -> bool:
        """Whether a write would be allowed: permission, a read-only mount, write bits, forced mode.

        Write bits are checked as well as access(2) because root passes access(2) for any file, but a
        0444 file in a fake tree stands for an attribute nobody may write.
        """
        if self.forced_read_only:
            return False
        real = self.real(path)
        try:
            st = real.stat()
        except OSError:
            return False
        if not os.access(real, os.W_OK):
            return False
        if self.is_host_root and hasattr(os, "geteuid") and os.geteuid() != 0:
            return False
        return bool(st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    def write(self, path: str, value: str | int) -> None:
        """Write a value (validated by the hook first); recorded whether it lands or not."""
        text = str(value)
        try:
            if self.forced_read_only:
                raise OSError(errno.EROFS, "sysfs root opened read-only")
            if self.hook is not None:
                self.hook.check(self, path, text)
            if not self.dry_run:
                with open(self.real(path), "w") as f:
                    f.write(text + "\n")
        except OSError as exc:
            self.writes.append(Write(path, text, ok=False, error=exc.strerror or str(exc)))
            raise
        self.writes.append(Write(path, text))
        if self.hook is not None and not self.dry_run:
            self.hook.after(self, path, text)

    def written(self) -> list[tuple[str, str]]:
        """The (path, value) pairs that landed, in order."""
        return [(w.path, w.value) for w in self.writes if w.ok]

    def clear_writes(self) -> None:
        self.writes.clear()

    # -- fake trees --------------------------------------------------------------------------------

    def _fake_hook(self) -> WriteHook | None:
        if self.is_host_root or not (self.root / FAKE_MARKER).is_file():
            return None
        from clone.runtime.jetson.faketree import FakeKernel

        return FakeKernel.from_marker(self.root / FAKE_MARKER)
