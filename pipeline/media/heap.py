"""Frame buffers from the heap, in a process that decodes many frames.

Every decoded, converted and resized frame is a new buffer (230 KB at 320x240, 6 MB at
1080p) freed a moment later. glibc's malloc hands out a block above its mmap threshold
as fresh pages from the kernel (a page fault every 4 KiB, the pages zeroed) and gives
the top of its heap back above its trim threshold. By default it raises the mmap
threshold to the size of the blocks it sees freed, so frames soon come from the heap;
but a process started with ``MALLOC_TRIM_THRESHOLD_`` set keeps the fixed 128 KiB
threshold: Dask's nanny sets 64 KiB for every worker, and there each frame was mapped
and unmapped again, which made a build's per-item work take 1.32x as long as in a
plain process (``benchmarks/build_bench.py --only heap``).

``keep_frames_on_the_heap()`` sets both thresholds above any frame size up to 4K, so
frames come from, and go back to, the heap of the process. Up to ``TRIM_BYTES`` of
freed memory then stay with the process instead of going back to the system.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1     # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20     # glibc's largest mmap threshold on 64-bit; a 4K BGR frame is 25 MB
TRIM_BYTES = 64 << 20


def keep_frames_on_the_heap() -> bool:
    """Tunes glibc's malloc in this process as the module's docstring says; returns whether
    it could (False, changing nothing, with another C library)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
