"""Exception types of the library.

The library raises these; the CLI turns them into one ``Error: FILE:LINE: what — hint``
line on stderr and exit status 1 (never a traceback).
"""

from __future__ import annotations


class SadError(Exception):
    """An error meant for a person: what is wrong, where, and what to try."""

    def __init__(self, message: str, *, hint: str | None = None,
                 file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line

    def located(self, file: str | None, line: int | None) -> SadError:
        """Fill in the location when the raiser did not know it."""
        if self.file is None:
            self.file = file
        if self.line is None:
            self.line = line
        return self

    def __str__(self) -> str:  # "FILE:LINE: message — hint"
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text


class InputError(SadError):
    """A record or file that cannot be used as it is (bad JSON, wrong field type...)."""


class SegmentError(InputError):
    """A record whose trajectory format cannot be recognized or parsed."""


class ModelSpecError(SadError):
    """A model/tokenizer spec that resolves to nothing usable."""
