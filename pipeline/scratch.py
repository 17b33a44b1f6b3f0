"""Scratch folders for work in progress (the assemble step's encodes, 6 MB and more each).

They live under ``<data_dir>/tmp`` and their names carry the host and process that made them, so
a worker starting on the same machine can remove those of processes that are gone (killed before
they could clean up) and never touch a live one's.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from providers.process import pid_alive

log = logging.getLogger(__name__)

PREFIX = "storyloom-asm-"


def scratch_root(data_dir: Path) -> Path:
    return data_dir / "tmp"


def scratch_dir(data_dir: Path) -> tempfile.TemporaryDirectory[str]:
    """A scratch folder for this process, removed when the ``with`` block ends."""
    root = scratch_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(
        prefix=f"{PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=root
    )


def _owner_gone(name: str, host: str) -> bool:
    rest = name.removeprefix(PREFIX)
    try:
        owner_host, pid, _ = rest.rsplit("-", 2)
        return owner_host == host and not pid_alive(int(pid))
    except ValueError:
        return False


def sweep_scratch(data_dir: Path, legacy_after_s: float = 6 * 3600) -> tuple[int, int]:
    """Remove the scratch folders of processes that are gone; return (folders, bytes).

    Folders from before they carried their owner (in the system temp folder) are removed once
    they are ``legacy_after_s`` old."""
    host = socket.gethostname()
    doomed: list[Path] = []
    root = scratch_root(data_dir)
    if root.is_dir():
        doomed += [p for p in root.glob(PREFIX + "*") if p.is_dir() and _owner_gone(p.name, host)]
    cutoff = time.time() - legacy_after_s
    for p in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if p.is_dir() and p.stat().st_mtime < cutoff:
                doomed.append(p)
        except OSError:
            continue
    folders = size = 0
    for p in doomed:
        size += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        shutil.rmtree(p, ignore_errors=True)
        folders += 1
    if folders:
        log.warning("removed scratch folders of stopped workers",
                    extra={"folders": folders, "bytes": size})
    return folders, size
