"""Keep large freed buffers in the process instead of handing them back to the kernel (glibc).

By default glibc serves every allocation above 32 MiB with its own `mmap` and returns it
with `munmap` when freed. A training step on CPU allocates and frees the same large
activation buffers every step, so every step the kernel maps fresh pages and zeroes them
on first touch: about 224,000 page faults and 0.4 CPU-seconds of kernel time per step of
the pinned benchmark network (docs/performance.md). `keep_freed_memory` makes glibc reuse
freed memory instead, so after the first few steps a step faults no pages. The price is
that the process keeps its peak memory resident until it exits.

This module needs only the standard library, so that the PyTorch reference
(`experiments/pytorch_reference.py`) can apply the very same setting in its own environment.
"""

from __future__ import annotations

import ctypes
import logging
import sys

# mallopt(3) parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

# One arena: memory freed by one of XLA's threads is reused by any other. Without it a
# worker thread's arena cannot grow beyond 64 MiB and falls back to mmap anyway. No mmap
# and a trim threshold of SIZE_MAX (-1 read as size_t): freed memory is never returned.
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))


def keep_freed_memory() -> bool:
    """Sets glibc's allocator to reuse freed memory rather than unmap it; True if it took effect.

    Call it at the start of a process, before the first JAX computation: threads started
    earlier keep the allocator arena they already have. Off Linux/glibc (macOS, musl) it
    changes nothing and returns False.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)
    if applied:
        logging.info("allocator: glibc keeps freed memory in the process (one arena, no mmap, no trim)")
    return applied
