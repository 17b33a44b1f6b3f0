"""A bounded local cache of media files, for a worker whose media live in object storage.

ffmpeg wants paths, so a remote store downloads what a step reads into this folder. The folder
is kept under ``limit_bytes`` by evicting the least recently used files; a file's mtime is its last
use, so several processes on one machine may share the folder. Files used in the last
``grace_s`` seconds are never evicted: a step may still be about to open a path it was handed, so
the folder can exceed its limit while one step holds more than the limit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evicted: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class MediaCache:
    """Files by media key under ``root``; blocking methods, to be run in a thread."""

    def __init__(self, root: Path, limit_bytes: int, grace_s: float = 900.0) -> None:
        self.root = root
        self.limit_bytes = limit_bytes
        self.grace_s = grace_s
        self.stats = CacheStats()
        root.mkdir(parents=True, exist_ok=True)

    def file(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> Path | None:
        """The cached file for ``key``, marked as just used, or None (counted as a miss)."""
        target = self.file(key)
        try:
            os.utime(target)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return target

    def partial(self) -> Path:
        """A fresh temporary file in the cache folder, for a download to be adopted."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".part-")
        os.close(fd)
        return Path(tmp)

    def adopt(self, key: str, tmp: Path) -> Path:
        """Move a complete download (or a copy made here) into place, then evict."""
        target = self.file(key)
        os.replace(tmp, target)
        self.evict()
        return target

    def add_copy(self, key: str, source: Path) -> Path:
        """Keep a copy of a file this process just uploaded (a hard link when possible)."""
        target = self.file(key)
        if target.exists():
            os.utime(target)
            return target
        tmp = self.partial()
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        return self.adopt(key, tmp)

    def add_bytes(self, key: str, data: bytes) -> Path:
        """Keep small media this process just stored (a frame, a narration): it reads them next."""
        target = self.file(key)
        if target.exists():
            os.utime(target)
            return target
        tmp = self.partial()
        tmp.write_bytes(data)
        return self.adopt(key, tmp)

    def discard(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file(key).unlink()

    def size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for entry in os.scandir(self.root):
            if entry.name.startswith(".part-"):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat()
                out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def evict(self, now: Callable[[], float] = time.time) -> int:
        """Remove least recently used files until the folder fits; returns bytes removed."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        removed = 0
        cutoff = now() - self.grace_s
        for mtime, size, path in entries:
            if total <= self.limit_bytes:
                break
            if mtime > cutoff:
                break  # everything after this was used more recently still
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                self.stats.evicted += 1
            total -= size
            removed += size
        return removed
