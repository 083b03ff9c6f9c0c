"""Arrays handed from forked worker processes to their parent through a shared memory file, not a pipe.

A pipe moves every token through two copies and a 64 KiB buffer at a time, while the parent (busy rendering too)
holds the GIL; a memory file made before ``fork`` costs one copy in the worker and none in the parent, which maps
the file and views the arrays in place.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from typing import NamedTuple

import numpy as np


class Slot(NamedTuple):
    """Where an array lies in a :class:`SharedFile` (what a worker sends back instead of the data)."""

    offset: int
    dtype: str
    count: int


class SharedFile:
    """An anonymous memory file, made by the parent before ``fork``: the worker appends with :meth:`put`, the
    parent reads with :meth:`view` once the worker is done."""

    def __init__(self) -> None:
        if hasattr(os, "memfd_create"):  # Linux: memory only, not bounded by the size of /dev/shm
            self._file = None
            self.fd = os.memfd_create("glmtune-data", os.MFD_CLOEXEC)
        else:  # elsewhere an unlinked temporary file (page cache)
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            self.fd = self._file.fileno()
        self.size = 0
        self._map: mmap.mmap | None = None

    def put(self, array: np.ndarray) -> Slot:
        """(worker) Append ``array``; the slot to send to the parent."""
        data = memoryview(np.ascontiguousarray(array)).cast("B")
        offset = self.size
        done = 0
        while done < len(data):
            done += os.pwrite(self.fd, data[done:], offset + done)
        self.size = offset + (len(data) + 7) // 8 * 8  # keep every array 8-byte aligned
        return Slot(offset, array.dtype.str, len(array))

    def view(self, slot: Slot) -> np.ndarray:
        """(parent) The array of ``slot``, in place (copy-on-write: writing to it never reaches the file)."""
        if slot.count == 0:
            return np.zeros(0, np.dtype(slot.dtype))
        if self._map is None:
            self._map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, access=mmap.ACCESS_COPY)
        return np.frombuffer(self._map, np.dtype(slot.dtype), slot.count, slot.offset)

    def close(self) -> None:
        """Close the file; arrays already viewed stay valid (the mapping lives as long as they do)."""
        if self._file is not None:
            self._file.close()
        elif self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
