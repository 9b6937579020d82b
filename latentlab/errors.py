"""One hierarchy for everything a user is told.

A ``UserError`` is the user's input or a state they can change (a bad image, an out-of-range
number, a busy trainer, a broken checkpoint folder): the UI shows its message, the API returns
it, and the log gets one line, never a traceback. Anything else is a bug and is logged in full.

>>> isinstance(InputError("seed must be a whole number"), UserError)
True
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; ``str(error)`` is the message they see."""


class InputError(UserError, ValueError):
    """An input is missing, malformed or out of range (images, numbers, choices, names)."""


class CheckpointError(UserError):
    """A checkpoint folder is missing, truncated, or does not match its config."""


class BusyError(UserError):
    """The resource is taken (a training job is already running)."""


class DataMissingError(UserError):
    """The data set is not on this machine and cannot be downloaded here."""
