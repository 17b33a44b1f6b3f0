"""Running stories through the real queue in tests."""

from __future__ import annotations

from pipeline.models import Story
from pipeline.queue import build_worker
from pipeline.runtime import Runtime
from pipeline.steps import STEP_FUNCTIONS, on_failure


async def run_worker_until_idle(rt: Runtime) -> None:
    """A burst worker in this process: runs every queued step (and those they enqueue)."""
    worker = build_worker(rt.settings, STEP_FUNCTIONS, on_failure, burst=True, runtime=rt,
                          handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def finished(rt: Runtime, story: Story) -> Story:
    await run_worker_until_idle(rt)
    return await rt.store.get(story.id)
