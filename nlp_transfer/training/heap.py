"""Keep large freed CPU buffers for reuse while training, so steps do not pay the kernel for fresh pages.

Each backward pass allocates the word-embedding gradient anew (30,522 x 384 floats, 47 MB, for the default model;
the gradient is set to None after each optimizer step). glibc's ``malloc`` serves any block above its largest mmap
threshold (32 MiB on 64-bit Linux) with a fresh ``mmap`` and unmaps it again on ``free``, so every step the kernel
maps and zeroes about 11,500 new pages and the first write faults on each of them. On a 2-core VM that is about
20 ms a step for the embedding's backward against 3.5 ms when the block is reused (BENCHMARKS.md, fourteenth
session): 5-8 % of a step of the default model.

:func:`reused_heap_memory` tells glibc to serve every block from its heap and to keep freed memory
(``mallopt(M_MMAP_MAX, 0)`` and a high ``M_TRIM_THRESHOLD``) for the duration of the block. After it, glibc maps
blocks of 32 MiB and more again and returns free heap above 64 MiB: the state its own sliding thresholds reach once a
process has freed a block that large (setting any threshold stops them sliding, so the block sets theirs).
Nothing is computed differently, only where the bytes live, so results are identical.
The cost: memory freed during training stays with the process until it ends or trims (a resident size at about
the run's peak). Elsewhere than glibc (macOS, Windows, musl) the block runs unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt parameters (glibc's malloc.h), and what they are set to after the block (see the module doc)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
DEFAULT_MMAP_MAX = 65536
AFTER_MMAP_THRESHOLD = 32 << 20  # glibc's largest sliding mmap threshold on 64-bit systems
AFTER_TRIM_THRESHOLD = 64 << 20  # twice that, as the sliding rule sets it
#: freed heap memory kept below this much at the top of the heap during training (1 GiB)
KEPT_WHILE_TRAINING = 1 << 30


def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose ``mallopt`` this module sets), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@contextmanager
def reused_heap_memory(enabled: bool = True) -> Iterator[bool]:
    """Within the block, glibc keeps every CPU block on its heap and reuses freed ones; yields whether it applied."""
    libc = glibc() if enabled else None
    if libc is None or not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, KEPT_WHILE_TRAINING)):
        yield False
        return
    try:
        yield True
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_MMAP_THRESHOLD, AFTER_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)
