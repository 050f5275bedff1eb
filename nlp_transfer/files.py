"""Writing files so that an interruption never leaves a half-written one in place of a good one."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a sibling ``.partial`` file moved into place when complete.

    A reader sees either the old file or the whole new one; a crash mid-write leaves the old file as it was.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
