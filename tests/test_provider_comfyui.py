"""ComfyUI: template filling, reference upload, websocket progress, /history and /view."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from providers.base import (
    CharacterRef,
    ImageRequest,
    Media,
    ProviderBadRequest,
    ProviderUnavailable,
    job_log,
)
from providers.comfyui import ComfyUIImageGenerator
from tests.fakes.base import DATA
from tests.fakes.helpers import REF_A, fast, provider_settings
from tests.fakes.joblog import MemoryJobLog
from tests.fakes.services import FakeComfyUI


@pytest_asyncio.fixture
async def comfy() -> AsyncIterator[FakeComfyUI]:
    server = await FakeComfyUI().start()
    yield server
    await server.stop()


def make(comfy: FakeComfyUI, workflow: str = "comfyui_workflow.json") -> ComfyUIImageGenerator:
    gen = ComfyUIImageGenerator.from_settings(
        "", provider_settings(comfyui_url=comfy.url, comfyui_workflow=DATA / workflow))
    fast(gen)
    return gen


async def test_workflow_is_filled_followed_and_fetched(comfy: FakeComfyUI) -> None:
    result = await make(comfy).generate(ImageRequest(
        prompt="a lighthouse", negative_prompt="text", width=768, height=1344, seed=1234))
    sent = comfy.calls("POST", "/prompt")[0].json
    graph = sent["prompt"]
    assert graph["3"]["inputs"]["seed"] == 1234
    assert graph["5"]["inputs"] == {"width": 768, "height": 1344, "batch_size": 1}
    assert graph["6"]["inputs"]["text"].startswith("a lighthouse")
    assert graph["7"]["inputs"]["text"] == "text, blurry"
    assert sent["client_id"]
    assert comfy.ws_messages_sent[-1] == "executing"  # followed the socket to the end
    views = comfy.calls("GET", "/view")
    assert [v.query for v in views] == [
        {"filename": "storyloom_00001_.png", "subfolder": "", "type": "output"}]
    assert len(result.images) == 1 and result.images[0].mime == "image/png"
    assert result.usage.usd == 0


async def test_reference_image_is_uploaded_and_wired_in(comfy: FakeComfyUI) -> None:
    gen = make(comfy, "comfyui_workflow_reference.json")
    await gen.generate(ImageRequest(
        prompt="Mara", width=512, height=512, seed=1,
        characters=[CharacterRef(name="Mara", description="keeper",
                                 reference=Media(data=REF_A, mime="image/png"))]))
    (name, data), = comfy.uploads.items()
    assert data == REF_A
    graph = comfy.calls("POST", "/prompt")[0].json["prompt"]
    assert graph["10"]["inputs"]["image"] == name
    with pytest.raises(ProviderBadRequest, match="reference"):
        await gen.generate(ImageRequest(prompt="no ref", width=512, height=512, seed=1))


async def test_execution_error_on_the_socket(comfy: FakeComfyUI) -> None:
    comfy.mode = "error"
    with pytest.raises(ProviderUnavailable, match="CUDA out of memory"):
        await make(comfy).generate(ImageRequest(prompt="x", width=512, height=512, seed=1))


async def test_without_a_websocket_it_polls_history(comfy: FakeComfyUI) -> None:
    comfy.mode = "no_ws"
    result = await make(comfy).generate(ImageRequest(prompt="x", width=512, height=512, seed=1))
    assert len(result.images) == 1 and len(comfy.calls("GET", "/history/")) >= 1


async def test_check(comfy: FakeComfyUI) -> None:
    assert (await make(comfy).check()).reachable
    missing = make(comfy, "no-such-workflow.json")
    probe = await missing.check()
    assert not probe.reachable and "unreadable" in probe.detail


async def test_a_recorded_prompt_is_followed_again_not_queued_twice(comfy: FakeComfyUI) -> None:
    """A worker killed after ComfyUI queued the prompt: the call made again (by another
    worker, on another socket) reads the prompt's history instead of queueing it again."""
    journal = MemoryJobLog()
    request = ImageRequest(prompt="a lighthouse", width=512, height=512, seed=7)
    with job_log(journal):
        await make(comfy).generate(request)
        again = await make(comfy).generate(request)
    assert len(comfy.calls("POST", "/prompt")) == 1 and len(again.images) == 1
    assert comfy.calls("GET", "/history/")
