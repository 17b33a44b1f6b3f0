"""Running stories through the real queue in tests."""

from __future__ import annotations

import asyncio

from pipeline.models import Story
from pipeline.runtime import Runtime
from pipeline.worker import run_until_idle


async def finished(rt: Runtime, story: Story) -> Story:
    """Run the worker until the queue is empty and return the story as it then stands."""
    await run_until_idle(rt)
    return await rt.store.get(story.id)


async def unacknowledged(rt: Runtime, platform: str, within: float = 5.0) -> int:
    """How many story events the ``platform`` bot has read but not acknowledged, once it has
    had ``within`` seconds to finish what it was showing (an ack follows the render)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        pending = await rt.redis.xpending(f"sl:events:{platform}", f"bot-{platform}")
        if pending["pending"] == 0 or loop.time() >= deadline:
            return int(pending["pending"])
        await asyncio.sleep(0.05)
