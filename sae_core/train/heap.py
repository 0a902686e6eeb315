"""A command's heap: memory a step frees is kept for the next step, not handed back to the kernel.

Every training step allocates its temporaries afresh. In a sweep block of 16 cells of 784 → 196 they are
6-10 MB each (activations [16, 128, 784], gradients [16, 196, 784]). glibc's malloc serves blocks that
large from fresh pages (mmap), or gives the freed top of its heap back to the kernel once more than its
trim threshold is free, so each step faults tens of MB of pages in again. Raising both thresholds keeps
those pages in the heap for the next step. Measured on the 16-cell 784 → 196 block (2026-12-07, 2 cores,
separate processes alternated, 25 steps after 3): 83-95 ms a step → 69-74 ms at one torch thread, 48-56 →
37-44 ms at two. Raising only one of the two thresholds did not help (the trim threshold alone made it
twice as slow).

Only `sae` commands call this: each is one short-lived process whose memory goes back when it exits. The
app's server keeps glibc's defaults, so what a finished run frees is returned to the system while the
server goes on (tests/test_soak.py watches that).
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""mallopt's parameter numbers (glibc's malloc.h)."""
KEEP_BYTES = 1 << 30
"""Both thresholds: blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap stays mapped."""


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (see above). False where the C library has no
    mallopt (not glibc: macOS, musl): nothing changes there."""
    try:  # the process's own symbols, the C library's among them (find_library would run ldconfig: 4 ms)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
