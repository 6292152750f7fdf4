"""User-facing errors: one paragraph that names the file, key or resource and what to do.

The CLI prints a ``GreenbenchError`` as its message alone (no traceback) and exits with
``exit_code``. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class GreenbenchError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""

    exit_code = 1


class SuiteError(GreenbenchError):
    """A suite manifest is malformed: the message names file, line, key and what was expected."""

    exit_code = 2


class MeterUnavailable(GreenbenchError):
    """A meter cannot read on this machine; the message is the reason, recorded with the run."""
