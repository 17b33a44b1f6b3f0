"""The media store: frames, clips, audio and videos, addressed by the SHA-256 of their bytes.

Two implementations: the local folder here (files under ``<media_dir>/ab/cd/<hash>.<ext>``) and
S3-compatible object storage in :mod:`pipeline.media_s3` (same keys, a bounded local cache for
the paths the encoder needs, presigned links).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pipeline.errors import MediaNotFound
from pipeline.models import MediaRef
from providers.base import ext_for

if TYPE_CHECKING:
    from pipeline.settings import Settings


class MediaStore(Protocol):
    async def put(self, data: bytes, mime: str) -> MediaRef: ...

    async def put_file(self, path: Path, mime: str) -> MediaRef: ...

    async def get(self, ref: MediaRef) -> bytes: ...

    async def path(self, ref: MediaRef) -> Path:
        """A local file with the media's bytes (a cached download for remote stores)."""
        ...

    async def exists(self, ref: MediaRef) -> bool: ...

    def public_url(self, ref: MediaRef) -> str | None:
        """A link anyone can open (for a video over a chat's upload limit), or None."""
        ...


class LocalMediaStore:
    def __init__(self, root: Path, public_base_url: str = "") -> None:
        self.root = root
        self.public_base_url = public_base_url.rstrip("/")
        root.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        if "/" in key or ".." in key or not key:
            raise MediaNotFound(f"bad media key {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def _put_bytes(self, data: bytes, mime: str) -> MediaRef:
        key = f"{hashlib.sha256(data).hexdigest()}.{ext_for(mime)}"
        target = self._file(key)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        return MediaRef(key=key, mime=mime, size=len(data))

    def _put_path(self, path: Path, mime: str) -> MediaRef:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        key = f"{digest.hexdigest()}.{ext_for(mime)}"
        target = self._file(key)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        return MediaRef(key=key, mime=mime, size=target.stat().st_size)

    async def put(self, data: bytes, mime: str) -> MediaRef:
        return await asyncio.to_thread(self._put_bytes, data, mime)

    async def put_file(self, path: Path, mime: str) -> MediaRef:
        return await asyncio.to_thread(self._put_path, path, mime)

    async def get(self, ref: MediaRef) -> bytes:
        target = self._file(ref.key)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except FileNotFoundError:
            raise MediaNotFound(f"media {ref.key} is missing from the media store") from None

    async def path(self, ref: MediaRef) -> Path:
        target = self._file(ref.key)
        if not target.exists():
            raise MediaNotFound(f"media {ref.key} is missing from the media store")
        return target

    async def exists(self, ref: MediaRef) -> bool:
        return self._file(ref.key).exists()

    async def delete(self, ref: MediaRef) -> int:
        """Remove the file (retention); return the bytes freed."""
        target = self._file(ref.key)
        try:
            size = target.stat().st_size
            await asyncio.to_thread(target.unlink)
        except FileNotFoundError:
            return 0
        return size

    def public_url(self, ref: MediaRef) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/{ref.key[:2]}/{ref.key[2:4]}/{ref.key}"


def open_media_store(media_store: str, root: Path, public_url: str = "") -> MediaStore:
    if media_store == "local":
        return LocalMediaStore(root, public_url)
    raise ValueError(f"unknown media store {media_store!r}")


def media_store_for(settings: Settings) -> MediaStore:
    """The media store the settings name: a local folder, or an S3 bucket with a local cache."""
    if settings.media_store == "s3":
        from pipeline.media_cache import MediaCache
        from pipeline.media_s3 import S3MediaStore

        cache = MediaCache(settings.data_dir / "media-cache",
                           int(settings.media_cache_mb * 1024 * 1024),
                           grace_s=float(settings.step_timeout_s))
        return S3MediaStore(
            settings.media_bucket, cache, prefix=settings.media_prefix,
            endpoint_url=settings.media_endpoint_url, region=settings.media_region,
            link_ttl=timedelta(hours=settings.media_link_hours),
            public_base_url=settings.media_public_url,
        )
    return open_media_store(settings.media_store, settings.media_path, settings.media_public_url)
