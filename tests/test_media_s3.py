"""The S3 media store against a real S3 HTTP server (moto's server mode)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from pipeline.errors import MediaNotFound
from pipeline.media import media_store_for
from pipeline.media_cache import MediaCache
from pipeline.media_s3 import MediaStoreUnavailable, S3MediaStore
from pipeline.queue import is_retryable
from pipeline.settings import load_settings
from tests.fakes.s3_server import S3Server


def _store(s3: S3Server, bucket: str, tmp_path: Path, limit: int = 1 << 30,
           prefix: str = "media") -> S3MediaStore:
    return S3MediaStore(bucket, MediaCache(tmp_path / "cache", limit, grace_s=0),
                        prefix=prefix, endpoint_url=s3.endpoint, retries=1, timeout_s=5)


async def test_settings_select_the_s3_store_and_keys_are_content_hashes(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    settings = load_settings(env_file=None, data_dir=tmp_path, media_store="s3",
                             media_bucket=bucket, media_prefix="story",
                             media_endpoint_url=s3.endpoint)
    media = media_store_for(settings)
    assert isinstance(media, S3MediaStore)
    ref = await media.put(b"a frame", "image/png")
    assert ref.key == hashlib.sha256(b"a frame").hexdigest() + ".png"
    assert s3.keys(bucket) == [f"story/{ref.key}"]
    assert not (tmp_path / "media").exists()  # nothing in a local media folder
    assert await media.get(ref) == b"a frame"


def test_s3_store_needs_a_bucket() -> None:
    from pipeline.errors import SettingsError

    with pytest.raises(SettingsError, match="STORYLOOM_MEDIA_BUCKET"):
        load_settings(env_file=None, media_store="s3")


async def test_a_video_streams_up_and_down_and_its_link_plays(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    video = tmp_path / "story.mp4"
    video.write_bytes(os.urandom(20 * 1024 * 1024 + 123))  # several multipart parts
    writer = _store(s3, bucket, tmp_path / "writer")
    ref = await writer.put_file(video, "video/mp4")
    assert ref.size == video.stat().st_size
    assert await writer.exists(ref)

    reader = _store(s3, bucket, tmp_path / "reader")  # another machine: an empty cache
    path = await reader.path(ref)
    assert path.is_relative_to(tmp_path / "reader" / "cache")
    assert path.read_bytes() == video.read_bytes()
    assert (reader.cache.stats.hits, reader.cache.stats.misses) == (0, 1)
    assert await reader.path(ref) == path
    assert reader.cache.stats.hits == 1

    link = reader.public_url(ref)
    assert link is not None and "X-Amz-Signature=" in link and "X-Amz-Expires=259200" in link
    async with httpx.AsyncClient() as client:  # a browser with no credentials
        answer = await client.get(link)
    assert answer.status_code == 200
    assert answer.content == video.read_bytes()
    assert answer.headers["content-type"] == "video/mp4"


async def test_the_cache_evicts_the_least_recently_used(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = _store(s3, bucket, tmp_path, limit=2500)
    refs = [await store.put(bytes([i]) * 1000, "image/png") for i in range(3)]
    store.cache.discard(refs[0].key)
    store.cache.discard(refs[1].key)
    store.cache.discard(refs[2].key)
    await store.path(refs[0])
    await asyncio.sleep(0.01)
    await store.path(refs[1])
    await asyncio.sleep(0.01)
    await store.path(refs[0])  # 0 is now more recent than 1
    await asyncio.sleep(0.01)
    await store.path(refs[2])  # 3000 bytes > 2500: the least recently used goes
    cached = {p.name for p in (tmp_path / "cache").iterdir()}
    assert cached == {refs[0].key, refs[2].key}
    assert store.cache.size() <= 2500
    assert await store.get(refs[1]) == bytes([1]) * 1000  # fetched again from the bucket


def test_files_in_use_are_not_evicted(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, 100, grace_s=60)
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"x" * 80)
    assert cache.evict() == 0  # both used within the grace period
    old = time.time() - 120
    os.utime(tmp_path / "a", (old, old))
    assert cache.evict() == 80
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


async def test_a_missing_key_is_media_not_found_without_a_server_path(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = _store(s3, bucket, tmp_path)
    ref = await store.put(b"clip", "video/mp4")
    await store.delete(ref)
    assert not await store.exists(ref)
    with pytest.raises(MediaNotFound) as caught:
        await store.path(ref)
    assert str(tmp_path) not in str(caught.value) and s3.endpoint not in str(caught.value)
    assert not is_retryable(caught.value)


async def test_an_unreachable_store_is_a_retryable_error(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = _store(s3, bucket, tmp_path)
    ref = await store.put(b"frame", "image/png")
    store.cache.discard(ref.key)
    s3.stop()
    try:
        with pytest.raises(MediaStoreUnavailable) as caught:
            await store.path(ref)
        assert is_retryable(caught.value)
        assert "storyloom-test-secret" not in str(caught.value)
    finally:
        s3.start()
    assert await store.get(ref) == b"frame"  # nothing was lost


async def test_what_a_worker_stores_it_reads_back_from_its_cache(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = _store(s3, bucket, tmp_path)
    frame = await store.put(b"a frame", "image/png")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 4096)
    clip = await store.put_file(video, "video/mp4")
    assert await store.get(frame) == b"a frame"
    assert (await store.path(clip)).read_bytes() == b"\x00" * 4096
    assert (store.cache.stats.hits, store.cache.stats.misses) == (2, 0)  # no download
