"""The one exception type that means "the user can fix this"."""

from __future__ import annotations

import os
import re

# a token is random letters and digits, so it holds a capital letter: a file name or a timestamp after "hf_" is no
# token (hf_sentiment_v2.csv, hf_20260105123045123456); "_" may touch it (my_hf_...), api_org_ is the old organisation token
#: a Hugging Face access token as the Hub writes them (hf_ or api_org_, then letters or digits)
HUB_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])(?:hf|api_org)_(?=[a-z0-9]*[A-Z])[A-Za-z0-9]{20,}(?![A-Za-z0-9])")


class UserError(Exception):
    """A problem with the user's input: a config key, a data file, a path or a model name.

    The CLI prints the message alone (no traceback unless ``--debug``) and exits with code 2.
    Messages name the file and line, or the config key, and say what to do.
    """


class ConfigError(UserError):
    """An unknown config key, a wrong type or an invalid value."""


class DataError(UserError):
    """A data file that cannot be read or does not fit the task."""


def refuse_one_string(value: object, parameter: str, items: str = "texts") -> None:
    """Raise a UserError when ``value``, given for the list argument ``parameter``, is one string: iterated, it would be
    read as its characters (a text, a label each)."""
    if isinstance(value, str):
        raise UserError(
            f"{parameter}={value[:40]!r}: give a list of {items}, e.g. [{value[:40]!r}] (one string was read as its characters)."
        )


def without_secrets(message: str) -> str:
    """``message`` with every Hub token in it (and the HF_TOKEN environment variable's value) masked as ``hf_***``: an
    error that quotes what was typed (an unknown option, an override) must not print a token typed by mistake."""
    secret = os.environ.get("HF_TOKEN", "")
    if len(secret) >= 8:
        message = message.replace(secret, "hf_***")
    return HUB_TOKEN_RE.sub("hf_***", message)
