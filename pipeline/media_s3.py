"""The media store on S3-compatible object storage (AWS S3, MinIO, R2, GCS's S3 API), via obstore.

Keys are the same content hashes as the local store's (``<sha256>.<ext>``, under an optional
prefix). Uploads stream from a file (multipart above the chunk size) and downloads stream to a file
in the worker's bounded :class:`~pipeline.media_cache.MediaCache`, so no video is ever held whole
in memory. Credentials come from the standard ``AWS_*`` environment variables (or the instance's
role), never from Storyloom's settings. Links for videos too big for a chat are presigned GET URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from pipeline.errors import MediaNotFound, StoryloomError
from pipeline.media_cache import MediaCache
from pipeline.models import MediaRef
from providers.base import ext_for

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024  # multipart part size and download chunk
# obstore raises FileNotFoundError for a missing key, BaseError or OSError for the rest


class MediaStoreUnavailable(StoryloomError):
    """The object store did not answer (or answered with an error): worth another try later."""

    retryable = True
    user_message = "the media store could not be reached; retry the story once it is back"


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class S3MediaStore:
    """:class:`~pipeline.media.MediaStore` over one bucket, with a local LRU cache for paths."""

    def __init__(
        self,
        bucket: str,
        cache: MediaCache,
        *,
        prefix: str = "",
        endpoint_url: str = "",
        region: str = "",
        link_ttl: timedelta = timedelta(days=3),
        public_base_url: str = "",
        retries: int = 3,
        timeout_s: float = 60.0,
    ) -> None:
        config: dict[str, Any] = {}
        if endpoint_url:
            config["endpoint"] = endpoint_url
        if region:
            config["region"] = region
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.store = S3Store(
            bucket,
            prefix=self.prefix or None,
            config=config,  # type: ignore[arg-type]
            client_options={
                "allow_http": endpoint_url.startswith("http://"),
                "connect_timeout": timedelta(seconds=10),
                "timeout": timedelta(seconds=timeout_s),
            },
            retry_config={
                "max_retries": retries,
                "retry_timeout": timedelta(seconds=timeout_s),
                "backoff": {"init_backoff": timedelta(milliseconds=200),
                            "max_backoff": timedelta(seconds=5), "base": 2},
            },
        )
        self.cache = cache
        self.link_ttl = link_ttl
        self.public_base_url = public_base_url.rstrip("/")

    def _unavailable(self, err: BaseException, what: str) -> MediaStoreUnavailable:
        log.warning("media store error", extra={"bucket": self.bucket, "what": what,
                                                "err": type(err).__name__})
        return MediaStoreUnavailable(f"the media store (bucket {self.bucket}) failed to {what}")

    def _missing(self, key: str) -> MediaNotFound:
        return MediaNotFound(f"media {key} is missing from the media store")

    async def exists(self, ref: MediaRef) -> bool:
        try:
            await obstore.head_async(self.store, ref.key)
        except FileNotFoundError:
            return False
        except (BaseError, OSError) as err:
            raise self._unavailable(err, "look up a file") from None
        return True

    async def put(self, data: bytes, mime: str) -> MediaRef:
        key = f"{hashlib.sha256(data).hexdigest()}.{ext_for(mime)}"
        ref = MediaRef(key=key, mime=mime, size=len(data))
        if not await self.exists(ref):
            try:
                await obstore.put_async(self.store, key, data,
                                        attributes={"Content-Type": mime})
            except (BaseError, OSError) as err:
                raise self._unavailable(err, "store a file") from None
        await asyncio.to_thread(self.cache.add_bytes, key, data)
        return ref

    async def put_file(self, path: Path, mime: str) -> MediaRef:
        digest, size = await asyncio.to_thread(_hash_file, path)
        key = f"{digest}.{ext_for(mime)}"
        ref = MediaRef(key=key, mime=mime, size=size)
        if not await self.exists(ref):
            try:
                await obstore.put_async(self.store, key, path, chunk_size=CHUNK,
                                        max_concurrency=4, attributes={"Content-Type": mime})
            except (BaseError, OSError) as err:
                raise self._unavailable(err, "store a file") from None
        # the worker that made a file is likely to read it next (the bot posting the video)
        await asyncio.to_thread(self.cache.add_copy, key, path)
        return ref

    async def get(self, ref: MediaRef) -> bytes:
        path = await self.path(ref)
        return await asyncio.to_thread(path.read_bytes)

    async def path(self, ref: MediaRef) -> Path:
        cached = await asyncio.to_thread(self.cache.lookup, ref.key)
        if cached is not None:
            return cached
        tmp = await asyncio.to_thread(self.cache.partial)
        try:
            await self._download(ref.key, tmp)
            return await asyncio.to_thread(self.cache.adopt, ref.key, tmp)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)

    async def _download(self, key: str, target: Path) -> None:
        try:
            result = await obstore.get_async(self.store, key)
            fh = await asyncio.to_thread(target.open, "wb")
            try:
                async for chunk in result.stream(min_chunk_size=CHUNK):
                    await asyncio.to_thread(fh.write, chunk)
            finally:
                await asyncio.to_thread(fh.close)
        except FileNotFoundError:
            raise self._missing(key) from None
        except (BaseError, OSError) as err:
            raise self._unavailable(err, "read a file") from None

    async def delete(self, ref: MediaRef) -> None:
        """Remove a file from the bucket and this worker's cache (retention, tests)."""
        try:
            await obstore.delete_async(self.store, ref.key)
        except (BaseError, OSError) as err:
            raise self._unavailable(err, "delete a file") from None
        await asyncio.to_thread(self.cache.discard, ref.key)

    def public_url(self, ref: MediaRef) -> str | None:
        """A presigned GET URL valid for ``link_ttl`` (or a public bucket URL when configured).
        Signing is local: it makes no request."""
        if self.public_base_url:
            return f"{self.public_base_url}/{ref.key}"
        try:  # the store adds its prefix
            return obstore.sign(self.store, "GET", ref.key, self.link_ttl)
        except BaseError:
            log.warning("cannot presign a media link", extra={"bucket": self.bucket})
            return None
