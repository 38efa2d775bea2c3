"""The one base class of every error a user can fix by changing an input.

``run.py`` has one error boundary: an ``InputError`` (a config, targets file, bar file, strategy
parameter, command-line argument or credential that cannot be used) prints its message — which names
the file, the key or field and the value — and exits with status 2. Anything else is a bug: one line
on the terminal, the traceback in the run's log, exit status 1. Subclasses keep ``ValueError`` as a
base so code that already catches ``ValueError`` keeps working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Something the user gave us (file, key, value, argument) is wrong; the message says which."""


class FileInputError(InputError):
    """A file that cannot be read as what it should be (missing, binary, not UTF-8, too large)."""
