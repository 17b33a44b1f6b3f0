"""Running stories through the real queue in tests."""

from __future__ import annotations

from pipeline.models import Story
from pipeline.runtime import Runtime
from pipeline.worker import run_until_idle


async def finished(rt: Runtime, story: Story) -> Story:
    """Run the worker until the queue is empty and return the story as it then stands."""
    await run_until_idle(rt)
    return await rt.store.get(story.id)
