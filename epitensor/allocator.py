"""glibc allocator settings that keep freed memory in the heap (Linux only, process-wide).

By default glibc serves blocks above 128 kB with fresh ``mmap`` pages and returns freed heap above a
small threshold to the operating system, so a loop that allocates and frees arrays of a few
hundred kB (a 1 Mb region: 40,000 bins and their coordinates) or tens of MB (a training step's
activations) pays for the kernel zeroing and faulting those pages in on every iteration. Measured
here: reading a 1 Mb region 1.9x faster, CPU training steps up to 1.6x faster.

:func:`keep_freed_memory` only ever raises the thresholds, so the milder setting of
:func:`epitensor.open_dataset` never undoes the stronger one training asks for. Set
``EPITENSOR_NO_MALLOPT=1`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_current = {"mmap": 0, "trim": 0}


def keep_freed_memory(mmap_threshold: int, trim_threshold: int) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from the heap and keep up to ``trim_threshold``
    bytes of free heap; return whether the settings changed.

    Examples
    --------
    >>> from epitensor.allocator import keep_freed_memory
    >>> keep_freed_memory(32 << 20, 256 << 20) in (True, False)
    True
    """
    if os.environ.get("EPITENSOR_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return False
    mmap_threshold, trim_threshold = max(mmap_threshold, _current["mmap"]), max(trim_threshold, _current["trim"])
    if (mmap_threshold, trim_threshold) == (_current["mmap"], _current["trim"]):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
    except (OSError, AttributeError):
        return False
    _current.update(mmap=mmap_threshold, trim=trim_threshold)
    return True
