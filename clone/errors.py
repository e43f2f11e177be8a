"""One error type for bad user input, so the CLI can print one line and exit 2 without a traceback."""

from __future__ import annotations


class CloneError(Exception):
    """A problem with user input (file, key, value) that the user can fix; printed as one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
