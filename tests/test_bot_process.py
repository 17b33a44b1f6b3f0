"""``storyloom telegram`` and ``storyloom discord`` as processes run them: the bot connects to
(a fake of) its platform, a worker runs beside it when asked, and a stop shuts both down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import discord
import pytest
from discord.gateway import DiscordWebSocket
from pydantic import SecretStr

from pipeline.runtime import Runtime
from tests.fakes import discord_api, telegram_api


@pytest.fixture(autouse=True)
def _discord_globals() -> Iterator[None]:
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 20) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        assert time.monotonic() < deadline, f"never saw {what}"
        await asyncio.sleep(0.05)


async def _workers(rt: Runtime) -> int:
    return len([k async for k in rt.redis.scan_iter(match="sl:worker:*")])


async def _run_and_stop(rt: Runtime, run: Callable[..., Awaitable[None]],
                        connected: Callable[[], Awaitable[bool]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run(rt.settings, with_worker=True, stop=stop))

    async def up() -> bool:
        if task.done():
            task.result()  # the bot died: show why
        return await connected()

    await _until(up, "the bot connect")
    await _until(lambda: _worker_count_is(rt, 1), "the in-process worker")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert await _workers(rt) == 0  # the worker said goodbye


async def _worker_count_is(rt: Runtime, n: int) -> bool:
    return await _workers(rt) == n


async def test_telegram_process_runs_with_a_worker_and_stops(rt: Runtime) -> None:
    from bots.telegram.app import run

    fake = telegram_api.FakeTelegram()
    await fake.start()
    try:
        rt.settings = rt.settings.model_copy(update={
            "telegram_token": SecretStr(telegram_api.TOKEN), "telegram_base_url": fake.url})

        async def polling() -> bool:
            return bool(fake.calls("POST", f"/bot{telegram_api.TOKEN}/getUpdates"))

        await _run_and_stop(rt, run, polling)
        assert fake.calls("POST", f"/bot{telegram_api.TOKEN}/setMyCommands")
    finally:
        await fake.stop()


async def test_discord_process_runs_with_a_worker_and_stops(rt: Runtime) -> None:
    from bots.discord.app import run

    fake = discord_api.FakeDiscord()
    await fake.start()
    try:
        fake.guild(moderator_role="Storytellers")
        rt.settings = rt.settings.model_copy(update={
            "discord_token": SecretStr(discord_api.TOKEN), "discord_api_base": fake.url})

        async def identified() -> bool:
            return bool(fake.identifies)

        await _run_and_stop(rt, run, identified)
    finally:
        await fake.stop()
