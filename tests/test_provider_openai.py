"""OpenAI-compatible provider against a fake speaking the OpenAI API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import SecretStr

from providers.base import (
    CharacterRef,
    ContentRefused,
    ImageRequest,
    Media,
    ProviderAuthError,
    ProviderBadResponse,
    ScriptRequest,
    SpeechRequest,
)
from providers.openai import OpenAIImageGenerator, OpenAINarrator, OpenAIScriptWriter
from tests.fakes.base import load, png
from tests.fakes.helpers import REF_A, REF_B, fast, provider_settings
from tests.fakes.services import GOOD_KEY, FakeOpenAI


def script_json(scenes: int = 3, cast: str = "Mara") -> str:
    return json.dumps({
        "title": "The Keeper and the Whale",
        "logline": "A lighthouse keeper befriends a stranded whale.",
        "characters": [{"name": "Mara", "description": "grey-haired keeper in a yellow coat"}],
        "scenes": [
            {"shot": f"shot {i}", "narration": f"line {i}", "characters": [cast]}
            for i in range(scenes)
        ],
    })


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def make(cls: type, fake: FakeOpenAI, model: str = "", **kw: object):  # type: ignore[no-untyped-def]
    provider = cls.from_settings(model, provider_settings(openai_base_url=f"{fake.url}/v1", **kw))
    fast(provider)
    return provider


async def test_script_uses_json_schema_and_validates(fake: FakeOpenAI) -> None:
    fake.chat_answers = [script_json(3)]
    writer = make(OpenAIScriptWriter, fake, "gpt-4o-mini")
    script, usage = await writer.write(ScriptRequest(idea="a keeper and a whale", scenes=3))
    assert script.title == "The Keeper and the Whale" and len(script.scenes) == 3
    sent = fake.calls("POST", "/v1/chat/completions")[0]
    assert sent.headers["Authorization"] == f"Bearer {GOOD_KEY}"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["response_format"]["type"] == "json_schema"
    assert "scenes" in sent.json["response_format"]["json_schema"]["schema"]["properties"]
    assert "a keeper and a whale" in sent.json["messages"][-1]["content"]
    # 1200 prompt tokens at $0.15/M + 800 completion tokens at $0.60/M
    assert usage.units == 2000 and usage.usd == pytest.approx(0.00018 + 0.00048)


async def test_invalid_script_is_repaired_with_the_errors(fake: FakeOpenAI) -> None:
    fake.chat_answers = ["not json at all", script_json(2), script_json(3)]
    writer = make(OpenAIScriptWriter, fake, "gpt-4o-mini")
    script, usage = await writer.write(ScriptRequest(idea="whale", scenes=3))
    assert len(script.scenes) == 3
    calls = fake.calls("POST", "/v1/chat/completions")
    assert len(calls) == 3
    assert "not valid JSON" in calls[1].json["messages"][-1]["content"]
    assert calls[1].json["messages"][-2] == {"role": "assistant", "content": "not json at all"}
    assert "scenes" in calls[2].json["messages"][-1]["content"]  # too few scenes, said why
    assert usage.units == 3 * 2000 and usage.usd == pytest.approx(3 * 0.00066)


async def test_script_that_never_validates_fails_after_two_repairs(fake: FakeOpenAI) -> None:
    fake.chat_answers = [script_json(3, cast="Nobody")] * 3
    writer = make(OpenAIScriptWriter, fake)
    with pytest.raises(ProviderBadResponse, match="after 2 repairs"):
        await writer.write(ScriptRequest(idea="whale", scenes=3))
    assert len(fake.calls("POST", "/v1/chat/completions")) == 3


async def test_server_without_json_schema_gets_json_mode(fake: FakeOpenAI) -> None:
    fake.reject_json_schema = True
    fake.chat_answers = ["```json\n" + script_json(3) + "\n```"]
    writer = make(OpenAIScriptWriter, fake, "llama3.1")
    script, _ = await writer.write(ScriptRequest(idea="whale", scenes=3))
    calls = fake.calls("POST", "/v1/chat/completions")
    assert [c.json["response_format"]["type"] for c in calls] == ["json_schema", "json_object"]
    assert script.characters[0].name == "Mara"


async def test_chat_refusal_is_content_refused(fake: FakeOpenAI) -> None:
    fake.chat_answers = [load("openai_chat_refusal.json")]
    with pytest.raises(ContentRefused, match="refused"):
        await make(OpenAIScriptWriter, fake).write(ScriptRequest(idea="x", scenes=3))


async def test_image_generation_request(fake: FakeOpenAI) -> None:
    gen = make(OpenAIImageGenerator, fake, "gpt-image-1")
    result = await gen.generate(ImageRequest(
        prompt="a lighthouse at dusk", width=576, height=1024, seed=42, count=2,
        characters=[CharacterRef(name="Mara", description="yellow coat")],
    ))
    sent = fake.calls("POST", "/v1/images/generations")[0].json
    assert sent["model"] == "gpt-image-1" and sent["n"] == 2 and sent["size"] == "1024x1536"
    assert "a lighthouse at dusk" in sent["prompt"] and "Mara: yellow coat" in sent["prompt"]
    assert [m.mime for m in result.images] == ["image/png", "image/png"]
    assert result.seeds == [42, 43]
    assert result.usage.units == 2 and result.usage.usd == pytest.approx(2 * 0.042)


async def test_reference_sheets_go_to_edits_as_multipart(fake: FakeOpenAI) -> None:
    gen = make(OpenAIImageGenerator, fake, "gpt-image-1")
    await gen.generate(ImageRequest(
        prompt="they meet", width=1024, height=1024, seed=1,
        characters=[
            CharacterRef(name="Mara", description="keeper",
                         reference=Media(data=REF_A, mime="image/png")),
            CharacterRef(name="Whale", description="blue whale",
                         reference=Media(data=REF_B, mime="image/png")),
        ],
    ))
    assert not fake.calls("POST", "/v1/images/generations")
    sent = fake.calls("POST", "/v1/images/edits")[0]
    assert [f[0] for f in sent.files] == ["image[]", "image[]"]
    assert [f[2] for f in sent.files] == [REF_A, REF_B]
    assert sent.form["model"] == "gpt-image-1" and sent.form["size"] == "1024x1024"


async def test_dall_e_3_draws_one_image_per_request_without_references(
    fake: FakeOpenAI
) -> None:
    gen = make(OpenAIImageGenerator, fake, "dall-e-3")
    result = await gen.generate(ImageRequest(
        prompt="they meet", width=720, height=1280, seed=7, count=3,
        characters=[CharacterRef(name="Mara", description="yellow coat",
                                 reference=Media(data=REF_A, mime="image/png"))],
    ))
    sent = [c.json for c in fake.calls("POST", "/v1/images/generations")]
    assert [s["n"] for s in sent] == [1, 1, 1]  # the API refuses n > 1 for dall-e-3
    assert all(s["size"] == "1024x1792" and "Mara: yellow coat" in s["prompt"] for s in sent)
    assert not fake.calls("POST", "/v1/images/edits")  # dall-e-3 has no edits
    assert len(result.images) == 3 and result.seeds == [7, 8, 9]
    assert result.usage.units == 3


async def test_image_moderation_block_is_content_refused(fake: FakeOpenAI) -> None:
    fake.script("POST", "/v1/images/generations", 400, load("openai_image_moderation_blocked.json"))
    with pytest.raises(ContentRefused, match="safety system"):
        await make(OpenAIImageGenerator, fake, "gpt-image-1").generate(
            ImageRequest(prompt="x", width=512, height=512, seed=0))


async def test_non_image_bytes_are_a_bad_response(fake: FakeOpenAI) -> None:
    fake.image_bytes = b"GIF? no, just text"
    with pytest.raises(ProviderBadResponse, match="expected image"):
        await make(OpenAIImageGenerator, fake).generate(
            ImageRequest(prompt="x", width=512, height=512, seed=0))
    fake.image_bytes = png()[:40]
    with pytest.raises(ProviderBadResponse, match="truncated"):
        await make(OpenAIImageGenerator, fake).generate(
            ImageRequest(prompt="x", width=512, height=512, seed=0))


async def test_speech_returns_wav_with_word_timings(fake: FakeOpenAI) -> None:
    narrator = make(OpenAINarrator, fake, "tts-1")
    result = await narrator.speak(SpeechRequest(text="The whale sang softly.", voice="nova"))
    sent = fake.calls("POST", "/v1/audio/speech")[0].json
    assert sent == {"model": "tts-1", "input": "The whale sang softly.", "voice": "nova",
                    "response_format": "wav", "speed": 1.0}
    assert result.audio.mime == "audio/wav" and result.duration_s == pytest.approx(0.5)
    assert [w.text for w in result.words] == ["The", "whale", "sang", "softly."]
    assert result.words[-1].end_s == pytest.approx(0.5)
    assert result.usage.usd == pytest.approx(len("The whale sang softly.") * 15 / 1e6)


async def test_check_accepts_a_good_key_and_flags_a_bad_one(fake: FakeOpenAI) -> None:
    good = await make(OpenAIScriptWriter, fake).check()
    assert good.reachable and good.key_accepted
    bad = OpenAIScriptWriter.from_settings("", provider_settings(
        openai_base_url=f"{fake.url}/v1", openai_api_key=SecretStr("sk-wrong-000000000")))
    probe = await bad.check()
    assert probe.reachable and probe.key_accepted is False and "wrong" not in probe.detail
    with pytest.raises(ProviderAuthError):
        await bad.write(ScriptRequest(idea="x", scenes=3))
    assert all(c.path == "/v1/models" or c.path.endswith("completions") for c in fake.requests)


async def test_script_is_asked_for_in_the_story_language(fake: FakeOpenAI) -> None:
    fake.chat_answers = [script_json(3)]
    writer = make(OpenAIScriptWriter, fake, "gpt-4o-mini")
    await writer.write(ScriptRequest(idea="一只熊猫学会了弹钢琴", scenes=3, language="zh"))
    system = fake.calls("POST", "/v1/chat/completions")[0].json["messages"][0]["content"]
    assert "narration in Chinese (zh)" in system


async def test_speech_model_with_instructions_is_told_the_language(fake: FakeOpenAI) -> None:
    narrator = make(OpenAINarrator, fake, "gpt-4o-mini-tts")
    await narrator.speak(SpeechRequest(text="Кит поёт.", voice="nova", language="ru"))
    sent = fake.calls("POST", "/v1/audio/speech")[0].json
    assert sent["instructions"] == "Speak in Russian (ru)."
    assert sent["input"] == "Кит поёт."
