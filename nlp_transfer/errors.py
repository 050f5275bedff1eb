"""The one exception type that means "the user can fix this"."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: a config key, a data file, a path or a model name.

    The CLI prints the message alone (no traceback unless ``--debug``) and exits with code 2.
    Messages name the file and line, or the config key, and say what to do.
    """


class ConfigError(UserError):
    """An unknown config key, a wrong type or an invalid value."""


class DataError(UserError):
    """A data file that cannot be read or does not fit the task."""
