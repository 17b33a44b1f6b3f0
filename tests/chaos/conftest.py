"""Fixtures of the chaos suite: the seed, the billed fal fake, and a cluster per scenario.

The seed is ``CHAOS_SEED`` when set (the name has no ``STORYLOOM_`` prefix because tests clear
those and settings refuse unknown ones), else a fixed default, and each scenario prints it.
``CHAOS_REPORT=path`` appends every scenario's figures to that file as JSON lines.
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.chaos.harness import Cluster
from tests.chaos.ledger import BilledFal, BilledReplicate

DEFAULT_SEED = 20261129


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: the chaos suite (tests/chaos; -m 'not chaos')")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def chaos_seed() -> int:
    raw = os.environ.get("CHAOS_SEED", "").strip()
    return int(raw) if raw else DEFAULT_SEED


@pytest.fixture
def seed(chaos_seed: int, request: pytest.FixtureRequest) -> int:
    """The scenario's own seed: the suite's seed mixed with the test's name."""
    mixed = (chaos_seed * 1_000_003 + zlib.crc32(request.node.name.encode())) % 2**31
    print(f"\nchaos seed {chaos_seed} (scenario seed {mixed}); rerun with CHAOS_SEED={chaos_seed}")
    return mixed


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real (tiny) H.264 MP4, as an image-to-video model returns: the assembler decodes it."""
    import subprocess

    from providers.offline.ffmpeg import ffmpeg_exe

    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         "color=c=0x3060a0:s=160x160:d=1:r=12", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out)],
        check=True, timeout=60,
    )
    return out.read_bytes()


@pytest_asyncio.fixture
async def fal(seed: int, clip: bytes) -> AsyncIterator[BilledFal]:
    server = BilledFal(random.Random(seed), clip)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def replicate(seed: int, clip: bytes, fal: BilledFal) -> AsyncIterator[BilledReplicate]:
    """Replicate, billing on the same ledger as fal (a scenario may run clips there)."""
    server = BilledReplicate(random.Random(seed + 2), clip, fal.ledger)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def cluster(tmp_path: Path, fal: BilledFal, replicate: BilledReplicate, seed: int,
                  chaos_seed: int, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, fal, random.Random(seed + 1), request.node.name, replicate)
    c.suite_seed = chaos_seed
    await c.open()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def results() -> Path | None:
    raw = os.environ.get("CHAOS_REPORT", "").strip()
    return Path(raw) if raw else None
