"""ElevenLabs text to speech with timestamps, against a fake of its API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import SecretStr

from providers.base import MusicRequest, ProviderAuthError, ProviderBadResponse, SpeechRequest
from providers.elevenlabs import ElevenLabsMusicMaker, ElevenLabsNarrator
from providers.http import sniff
from tests.fakes.base import load
from tests.fakes.helpers import fast, provider_settings
from tests.fakes.services import GOOD_KEY, FakeElevenLabs


@pytest_asyncio.fixture
async def el() -> AsyncIterator[FakeElevenLabs]:
    server = await FakeElevenLabs().start()
    yield server
    await server.stop()


def make(el: FakeElevenLabs, **kw: object) -> ElevenLabsNarrator:
    n = ElevenLabsNarrator.from_settings("", provider_settings(elevenlabs_base_url=el.url, **kw))
    fast(n)
    return n


async def test_words_are_timed_from_the_alignment(el: FakeElevenLabs) -> None:
    result = await make(el).speak(SpeechRequest(text="Hello big whale", voice="joe"))
    sent = el.calls("POST", "/v1/text-to-speech/")[0]
    assert sent.path == "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/with-timestamps"
    assert sent.query["output_format"] == "pcm_24000"
    assert sent.headers["xi-api-key"] == GOOD_KEY
    assert sent.json == {"text": "Hello big whale", "model_id": "eleven_multilingual_v2"}
    assert [w.text for w in result.words] == ["Hello", "big", "whale"]
    assert result.words[1].start_s == pytest.approx(6 * 0.05)
    assert result.words[1].end_s == pytest.approx(9 * 0.05)
    assert result.duration_s == pytest.approx(15 * 0.05)
    assert sniff(result.audio.data) == "audio/wav"
    assert result.usage.units == 15 and result.usage.usd == pytest.approx(15 * 0.0003)


async def test_a_voice_id_is_used_as_given(el: FakeElevenLabs) -> None:
    await make(el).speak(SpeechRequest(text="Hi", voice="AZnzlk1XvdvUeBnXmlld", speed=1.1))
    sent = el.calls("POST", "/v1/text-to-speech/")[0]
    assert sent.path.startswith("/v1/text-to-speech/AZnzlk1XvdvUeBnXmlld/")
    assert sent.json["voice_settings"] == {"speed": 1.1}


async def test_truncated_audio_is_a_bad_response(el: FakeElevenLabs) -> None:
    el.truncate_audio = True
    with pytest.raises(ProviderBadResponse, match="truncated"):
        await make(el).speak(SpeechRequest(text="Hello"))


async def test_errors_in_elevenlabs_format(el: FakeElevenLabs) -> None:
    narrator = make(el)
    el.script("POST", "/v1/text-to-speech/", 429, load("elevenlabs_error_429.json"),
              {"Retry-After": "4"})
    await narrator.speak(SpeechRequest(text="Hello"))
    assert narrator.service.retry.sleep.calls == [4.0]  # type: ignore[attr-defined]
    el.script("POST", "/v1/text-to-speech/", 401, load("elevenlabs_error_quota.json"))
    with pytest.raises(ProviderAuthError, match="exceeds your quota"):
        await narrator.speak(SpeechRequest(text="Hello"))
    bad = make(el, elevenlabs_api_key=SecretStr("xi-bad-key-123456"))
    with pytest.raises(ProviderAuthError, match="Invalid API key"):
        await bad.speak(SpeechRequest(text="Hello"))
    assert (await bad.check()).key_accepted is False
    assert (await narrator.check()).key_accepted is True


def music_maker(el: FakeElevenLabs) -> ElevenLabsMusicMaker:
    m = ElevenLabsMusicMaker.from_settings("", provider_settings(elevenlabs_base_url=el.url))
    fast(m)
    return m


async def test_music_is_an_instrumental_track_within_the_apis_length_bounds(
    el: FakeElevenLabs
) -> None:
    short = await music_maker(el).compose(MusicRequest(duration_s=4.0, mood="calm"))
    long = await music_maker(el).compose(MusicRequest(duration_s=612.0, mood="tense"))
    sent = [c.json for c in el.calls("POST", "/v1/music")]
    assert [b["music_length_ms"] for b in sent] == [10_000, 300_000]
    assert all(b["force_instrumental"] is True and b["model_id"] == "music_v1" for b in sent)
    assert "tense" in sent[1]["prompt"]
    assert sniff(short.audio.data) == "audio/mpeg" and short.duration_s == 10
    assert long.duration_s == 300 and long.usage.usd == pytest.approx(300 * 0.0115)


async def test_music_answer_that_is_not_audio_is_a_typed_error(el: FakeElevenLabs) -> None:
    el.mp3 = b"<html>gateway says hello</html>"
    with pytest.raises(ProviderBadResponse, match="expected audio"):
        await music_maker(el).compose(MusicRequest(duration_s=20))


async def test_a_story_in_another_language_gets_a_multilingual_model(el: FakeElevenLabs) -> None:
    english_only = ElevenLabsNarrator.from_settings(
        "eleven_turbo_v2", provider_settings(elevenlabs_base_url=el.url))
    fast(english_only)
    result = await english_only.speak(SpeechRequest(text="Hola ballena", language="es"))
    assert el.calls("POST", "/v1/text-to-speech/")[0].json["model_id"] == "eleven_multilingual_v2"
    assert result.usage.model == "eleven_multilingual_v2"
    await english_only.speak(SpeechRequest(text="Hello whale", language="en"))
    assert el.calls("POST", "/v1/text-to-speech/")[1].json["model_id"] == "eleven_turbo_v2"


async def test_a_flash_v2_5_model_is_given_the_language_code(el: FakeElevenLabs) -> None:
    flash = ElevenLabsNarrator.from_settings(
        "eleven_flash_v2_5", provider_settings(elevenlabs_base_url=el.url))
    fast(flash)
    await flash.speak(SpeechRequest(text="你好", language="zh"))
    sent = el.calls("POST", "/v1/text-to-speech/")[0].json
    assert sent["language_code"] == "zh" and sent["model_id"] == "eleven_flash_v2_5"
