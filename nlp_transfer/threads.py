"""``training.torch_threads`` is a run's setting, not the process's: the verbs that set it give the count back after."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def restores_torch_threads(function: F) -> F:
    """``function`` with torch's thread count as it found it once it returns or raises (a notebook's next run, or
    anything else in the process, stayed on a run's ``training.torch_threads``)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        before = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    return wrapper  # type: ignore[return-value]
