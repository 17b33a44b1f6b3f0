"""Shared HTTP plumbing for the real model services.

One ``httpx.AsyncClient`` per process; retries with exponential backoff and jitter on 429, 5xx,
timeouts and dropped connections (honouring ``Retry-After``); a limit on in-flight requests per
service in this process and, once :func:`configure_redis` has been called, across every worker;
streamed downloads with a size cap and a check of the bytes' real type. Every failure leaves here
as a typed :class:`~providers.base.ProviderError` whose text never holds a key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import hashlib
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeVar

import httpx
from pydantic import SecretStr

from providers.base import (
    AnimateRequest,
    ContentRefused,
    ImageRequest,
    JobLog,
    JobRef,
    JobStopped,
    Media,
    MusicRequest,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderUnavailable,
    current_job_log,
)
from providers.config import ProviderSettings
from providers.pricing import PriceTable
from providers.process import holder, holder_gone
from providers.wav import pcm16_wav

log = logging.getLogger(__name__)

T = TypeVar("T")
CallKind = Literal["api", "poll", "upload", "download"]
MediaKind = Literal["image", "video", "audio"]
Sleep = Callable[[float], Awaitable[None]]
RefusalCheck = Callable[[httpx.Response, Any], "str | None"]

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})

# --------------------------------------------------------------------------- the shared client

_client: httpx.AsyncClient | None = None
_redis: Any = None


def get_client() -> httpx.AsyncClient:
    """The process-wide client. Timeouts are set per call, so the client has none of its own."""
    global _client
    if _client is None or _client.is_closed:
        _client = httpx.AsyncClient(
            follow_redirects=True,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "storyloom/0.1"},
        )
    return _client


async def close_client() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


def configure_redis(redis: Any | None) -> None:
    """Called by the worker at start-up with its ``redis.asyncio.Redis``: from then on each
    service's limit (``provider_concurrency_total``, or ``provider_concurrency`` when that is 0)
    holds across every worker sharing that Redis."""
    global _redis
    _redis = redis


# --------------------------------------------------------------------------- redaction

_TOKENISH = re.compile(r"\b(?:sk|r8|xi|fal|key)[-_][A-Za-z0-9*_\-.]{4,}", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove keys (exact, or the masked form some services echo back) from a message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _TOKENISH.sub("[redacted]", text)


def error_message(response: httpx.Response, payload: Any = None) -> str:
    """The human part of an error answer, whatever the service's format."""
    if payload is None:
        try:
            payload = response.json()
        except ValueError:
            payload = None
    msg: Any = None
    if isinstance(payload, dict):
        err = payload.get("error")
        detail = payload.get("detail")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("code") or err.get("type")
        elif isinstance(err, str):
            msg = err
        if msg is None and isinstance(detail, dict):
            msg = detail.get("message") or detail.get("status")
        elif msg is None and isinstance(detail, list) and detail:
            first = detail[0]
            msg = first.get("msg") if isinstance(first, dict) else str(first)
        elif msg is None and isinstance(detail, str):
            msg = detail
        if msg is None:
            msg = payload.get("message") or payload.get("title")
    if msg is None:  # never a raw answer: JSON the code above cannot read says nothing to a user
        text = response.text.strip()
        raw = text.startswith(("{", "[")) or text.lower().startswith(("<!doctype", "<html"))
        msg = (None if raw else text[:200]) or response.reason_phrase or "no details"
    return str(msg)[:300]


# --------------------------------------------------------------------------- retry policy


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter. ``sleep`` is injectable so tests can record the waits."""

    retries: int = 3
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 300.0
    sleep: Sleep = field(default=asyncio.sleep)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.cap_s, self.base_s * (2.0**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class _Retry(Exception):
    """A failure worth another attempt. ``sent`` is false when the service certainly did not
    act on the request (it was never delivered, or answered 429)."""

    def __init__(self, reason: str, retry_after: float | None = None, sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.sent = sent


# --------------------------------------------------------------------------- concurrency limits

_local: dict[tuple[str, int, int], asyncio.Semaphore] = {}
# The services whose slot the running task holds for a whole job: its polls and downloads
# run inside that slot instead of queueing for another (which a limit of 1 would deadlock).
_held: ContextVar[frozenset[str]] = ContextVar("storyloom_held_slots", default=frozenset())

LEASE_S = 60.0  # a dead holder's slot frees itself this long after its last renewal

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"""


def _semaphore(name: str, limit: int) -> asyncio.Semaphore:
    key = (name, limit, id(asyncio.get_running_loop()))
    sem = _local.get(key)
    if sem is None:
        sem = _local[key] = asyncio.Semaphore(limit)
    return sem


@asynccontextmanager
async def redis_slot(
    redis: Any, name: str, limit: int, lease_s: float = LEASE_S, token: str = ""
) -> AsyncIterator[None]:
    """A lease in a Redis sorted set: at most ``limit`` holders of ``name`` across processes.

    The holder renews its lease while it holds it, so a slot can be held for a job of any
    length, and a holder that dies loses it ``lease_s`` after its last renewal. ``token`` names
    the holding (a job's journal entry): a process that resumes a dead worker's job takes that
    job's slot back instead of waiting for it to expire."""
    key = f"storyloom:inflight:{name}"
    owners = f"{key}:owners"
    token = token or uuid.uuid4().hex
    lease_ms = int(lease_s * 1000)
    wait, reaped = 0.02, 0.0
    while not await redis.eval(_ACQUIRE, 1, key, limit, lease_ms, token):
        if time.monotonic() - reaped > 1.0:  # a killed worker of this machine frees its slots
            reaped = time.monotonic()
            await _reap_dead_holders(redis, key, owners)
        await asyncio.sleep(wait + random.uniform(0, wait))
        wait = min(wait * 2, 0.5)
    await redis.hset(owners, token, holder())
    await redis.expire(owners, int(lease_s * 4))

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                await redis.eval(_RENEW, 1, key, lease_ms, token)
            except Exception:  # Redis restarting: the next renewal may work
                log.debug("could not renew a cross-worker slot", exc_info=True)

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewer.cancel()
        await asyncio.shield(redis.zrem(key, token))
        await asyncio.shield(redis.hdel(owners, token))


async def _reap_dead_holders(redis: Any, key: str, owners: str) -> None:
    """Drop the leases whose holder is a process of this machine that has ended."""
    for token, owner in (await redis.hgetall(owners)).items():
        who = owner.decode() if isinstance(owner, bytes) else str(owner)
        if holder_gone(who):
            log.info("freeing a provider slot its killed worker held", extra={"slot": key})
            await redis.zrem(key, token)
            await redis.hdel(owners, token)


@asynccontextmanager
async def slot(
    name: str, limit: int, total: int = 0, lease_s: float = LEASE_S, token: str = ""
) -> AsyncIterator[None]:
    """Hold one slot of service ``name``: at most ``limit`` in this process and, once
    :func:`configure_redis` has been called, at most ``total`` (or ``limit`` when ``total`` is
    0) across every worker sharing that Redis. Waiting here is not an attempt at anything."""
    if name in _held.get():
        yield  # this task holds the service's slot for its whole job already
        return
    async with _semaphore(name, limit):
        marker = _held.set(_held.get() | {name})
        try:
            if _redis is None:
                yield
                return
            try:
                held = redis_slot(_redis, name, total or limit, lease_s, token)
                await held.__aenter__()
            except Exception as err:  # Redis down: the local limit still holds
                log.warning("cross-worker limit unavailable", extra={"provider": name,
                                                                     "reason": type(err).__name__})
                yield
                return
            try:
                yield
            finally:
                try:
                    await held.__aexit__(None, None, None)
                except Exception:  # the lease expires on its own
                    log.debug("could not release cross-worker slot", exc_info=True)
        finally:
            _held.reset(marker)


# --------------------------------------------------------------------------- media sniffing

_FAMILY_OK = {"application/octet-stream", "binary/octet-stream", ""}


def sniff(data: bytes) -> str | None:
    """The media type the bytes really are, from their magic numbers."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "video/webm"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def looks_complete(data: bytes, mime: str) -> bool:
    """Cheap truncation check for the formats that carry an end marker or a length."""
    if mime == "image/png":
        return data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")
    if mime == "image/jpeg":
        return data.rstrip(b"\x00\r\n").endswith(b"\xff\xd9")
    if mime in ("image/webp", "audio/wav") and len(data) >= 12:
        return int.from_bytes(data[4:8], "little") + 8 <= len(data)
    return True


def check_media(provider: str, data: bytes, expect: MediaKind, declared: str = "") -> Media:
    """Bytes -> :class:`Media`, or ProviderBadResponse if they are not a whole ``expect`` file."""
    if not data:
        raise ProviderBadResponse(provider, f"empty {expect} download")
    mime = sniff(data)
    if mime is None or not mime.startswith(expect + "/"):
        what = mime or "unrecognised bytes"
        raise ProviderBadResponse(provider, f"expected {expect}, got {what} ({declared or '?'})")
    if not looks_complete(data, mime):
        raise ProviderBadResponse(provider, f"truncated {mime} ({len(data)} bytes)")
    return Media(data=data, mime=mime)


def decode_data_uri(provider: str, uri: str, expect: MediaKind) -> Media:
    header, _, payload = uri.partition(",")
    try:
        data = base64.b64decode(payload, validate=True) if ";base64" in header else payload.encode()
    except (binascii.Error, ValueError) as err:
        raise ProviderBadResponse(provider, "data URI is not valid base64") from err
    return check_media(provider, data, expect, header[5:].split(";")[0])


def data_uri(media: Media) -> str:
    return f"data:{media.mime};base64,{base64.b64encode(media.data).decode()}"


# --------------------------------------------------------------------------- the service client


class Service:
    """One model service as seen from this process: its name, auth headers, limits and retries.

    Provider classes own one each and call :meth:`request`, :meth:`json` and :meth:`download`.
    ``refusal`` recognises the service's own content-policy answer in a 4xx (or 200) body.
    """

    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        *,
        auth: Callable[[], dict[str, str]] | None = None,
        secrets: Callable[[], list[str]] | None = None,
        refusal: RefusalCheck | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._auth = auth or dict
        self._secrets = secrets or list
        self.refusal = refusal
        self.retry = RetryPolicy(retries=settings.provider_retries)
        self.limit = settings.provider_concurrency
        self.total_limit = settings.provider_concurrency_total
        self.max_download = int(settings.max_download_mb * 1024 * 1024)
        base = settings.provider_timeout_s
        self.timeouts: dict[CallKind, float] = {
            "api": base,
            "poll": min(base, 30.0),
            "upload": base,
            "download": max(base, 120.0),
        }

    def __repr__(self) -> str:
        return f"Service({self.name!r})"

    def job_slot(self, token: str = "") -> AbstractAsyncContextManager[None]:
        """One of the service's slots, held from a job's submission to its result (the calls
        made inside it take no other). ``token`` names the job, so a resumed job retakes it."""
        return slot(self.name, self.limit, self.total_limit, token=token)

    # -- plumbing

    def _timeout(self, kind: CallKind) -> httpx.Timeout:
        t = self.timeouts[kind]
        return httpx.Timeout(t, connect=min(t, 10.0))

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets())

    async def _attempts(
        self, what: str, kind: CallKind, once: Callable[[], Awaitable[T]],
        found: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """``once`` until it succeeds or the retries run out. ``found`` (for a call that creates
        a paid job) looks for what an attempt that may have reached the service created, before
        the next attempt would create it a second time."""
        last = _Retry("no attempt made")
        for attempt in range(self.retry.retries + 1):
            try:
                async with slot(self.name, self.limit, self.total_limit):
                    if attempt and last.sent and found is not None:
                        earlier = await found()
                        if earlier is not None:
                            return earlier
                    return await once()
            except _Retry as retry:
                last = retry
            if attempt < self.retry.retries:
                delay = self.retry.delay(attempt, last.retry_after)
                log.info(
                    "retrying provider call",
                    extra={"provider": self.name, "call": what, "reason": last.reason,
                           "attempt": attempt + 1, "delay_s": round(delay, 3)},
                )
                await self.retry.sleep(delay)
        raise ProviderUnavailable(
            self.name, f"{what}: {last.reason} (gave up after {self.retry.retries + 1} attempts)"
        )

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        """Map a non-2xx answer to a typed error, or to a retry."""
        status = response.status_code
        if status < 400 and status not in RETRY_STATUSES:
            return
        payload: Any = None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status in RETRY_STATUSES or status >= 500:
            raise _Retry(
                f"HTTP {status}: {self._clean(error_message(response, payload))}",
                parse_retry_after(response.headers),
                sent=status != 429,
            )
        refused = self.refusal(response, payload) if self.refusal else None
        if refused:
            raise ContentRefused(self.name, self._clean(refused))
        msg = self._clean(error_message(response, payload))
        if status in (401, 403):
            raise ProviderAuthError(self.name, f"key rejected (HTTP {status}): {msg}")
        err = ProviderBadRequest(self.name, f"{what} rejected (HTTP {status}): {msg}")
        err.status = status
        raise err

    # -- calls

    async def request(
        self,
        method: str,
        url: str,
        *,
        kind: CallKind = "api",
        what: str = "",
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        found: Callable[[], Awaitable[httpx.Response | None]] | None = None,
    ) -> httpx.Response:
        """One call, retried on 429, 5xx, timeouts and dropped connections. For a call that
        creates a paid job, ``found`` finds the job an earlier attempt may have created (its
        answer lost to a timeout or a dropped connection), so it is not created twice."""
        what = what or f"{method} {httpx.URL(url).path}"

        async def once() -> httpx.Response:
            try:
                response = await get_client().request(
                    method,
                    url,
                    json=json,
                    data=data,
                    files=files,
                    params=params,
                    headers={**self._auth(), **(headers or {})},
                    timeout=self._timeout(kind),
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
                raise _Retry(f"connection failed ({type(err).__name__})", sent=False) from err
            except httpx.TimeoutException as err:
                raise _Retry(f"timed out after {self.timeouts[kind]:g}s") from err
            except httpx.TransportError as err:
                raise _Retry(f"connection failed ({type(err).__name__})") from err
            self._raise_for(response, what)
            return response

        return await self._attempts(what, kind, once, found)

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.request(method, url, **kwargs)
        return self.parse_json(response)

    def parse_json(self, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError as err:
            snippet = self._clean(response.text[:80])
            raise ProviderBadResponse(self.name, f"answer is not JSON: {snippet!r}") from err

    async def download(
        self, url: str, expect: MediaKind, *, authorised: bool = False, max_bytes: int | None = None
    ) -> Media:
        """Stream ``url`` into memory, refusing more than ``max_bytes`` and anything that is not
        a complete ``expect`` file. ``authorised`` sends the service's key (its own URLs only)."""
        if url.startswith("data:"):
            return decode_data_uri(self.name, url, expect)
        cap = max_bytes or self.max_download

        async def once() -> Media:
            headers = self._auth() if authorised else {}
            try:
                async with get_client().stream(
                    "GET", url, headers=headers, timeout=self._timeout("download")
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self._raise_for(response, "download")
                    declared = response.headers.get("content-type", "").split(";")[0].strip()
                    if declared not in _FAMILY_OK and not declared.startswith(expect + "/"):
                        raise ProviderBadResponse(
                            self.name, f"download is {declared}, not {expect}"
                        )
                    length = response.headers.get("content-length")
                    if length and length.isdigit() and int(length) > cap:
                        raise ProviderBadResponse(
                            self.name, f"download of {int(length)} bytes exceeds the {cap} cap"
                        )
                    buf = bytearray()
                    async for chunk in response.aiter_bytes():
                        buf += chunk
                        if len(buf) > cap:
                            raise ProviderBadResponse(
                                self.name, f"download exceeds the {cap} byte cap"
                            )
            except httpx.TimeoutException as err:
                raise _Retry("download timed out") from err
            except httpx.TransportError as err:
                raise _Retry(f"download broke off ({type(err).__name__})") from err
            return check_media(self.name, bytes(buf), expect, declared)

        return await self._attempts("download", "download", once)


@dataclass(frozen=True)
class Probe:
    """What a free check call learnt: could we reach the service, did it accept the key."""

    reachable: bool
    key_accepted: bool | None
    detail: str


async def probe(
    service: Service,
    url: str,
    *,
    accept: Iterable[int] = (200,),
    headers: Mapping[str, str] | None = None,
) -> Probe:
    """One GET without retries, for ``storyloom providers``. Never raises."""
    try:
        response = await get_client().get(
            url, headers={**service._auth(), **(headers or {})}, timeout=service._timeout("poll")
        )
    except httpx.HTTPError as err:
        return Probe(False, None, f"unreachable ({type(err).__name__})")
    msg = service._clean(error_message(response)) if response.status_code >= 400 else ""
    if response.status_code in (401, 403):
        return Probe(True, False, f"key rejected (HTTP {response.status_code}): {msg}")
    if response.status_code in set(accept):
        return Probe(True, True, "ok")
    return Probe(True, None, f"unexpected HTTP {response.status_code}: {msg}")


# --------------------------------------------------------------------------- audio helpers


def normalise_wav(provider: str, data: bytes) -> tuple[Media, float]:
    """A service's WAV (possibly streamed, with placeholder sizes) -> mono PCM16 WAV + seconds."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProviderBadResponse(provider, "speech answer is not a WAV file")
    offset, fmt, pcm = 12, None, None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt " and len(body) >= 16:
            fmt = (
                int.from_bytes(body[0:2], "little"),
                int.from_bytes(body[2:4], "little"),
                int.from_bytes(body[4:8], "little"),
                int.from_bytes(body[14:16], "little"),
            )
        elif chunk_id == b"data":
            pcm = body
            break
        offset += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ProviderBadResponse(provider, "WAV answer lacks its fmt or data chunk")
    codec, channels, rate, bits = fmt
    if codec != 1 or bits != 16 or channels < 1 or rate <= 0:
        raise ProviderBadResponse(provider, f"WAV is not PCM16 (format {codec}, {bits} bits)")
    frame = 2 * channels
    pcm = pcm[: len(pcm) - len(pcm) % frame]
    if not pcm:
        raise ProviderBadResponse(provider, "WAV answer holds no audio")
    if channels > 1:
        pcm = b"".join(pcm[i : i + 2] for i in range(0, len(pcm), frame))
    return Media(data=pcm16_wav(pcm, rate), mime="audio/wav"), len(pcm) / 2 / rate


# --------------------------------------------------------------------------- request shaping


def compose_prompt(request: ImageRequest) -> str:
    """Everything a text-only image model needs, in one prompt."""
    parts = [request.prompt.strip()]
    if request.setting:
        parts.append(f"Setting: {request.setting}, {request.time_of_day}.")
    parts.append(f"{request.framing.capitalize()} shot. Style: {request.style}.")
    for c in request.characters:
        parts.append(f"{c.name}: {c.description}.")
    if any(c.reference for c in request.characters):
        parts.append("Keep each character exactly as in the reference images.")
    if request.negative_prompt:
        parts.append(f"Avoid: {request.negative_prompt}.")
    return " ".join(p for p in parts if p)


MOTION_PROMPTS = {
    "push_in": "slow camera push in",
    "pull_out": "slow camera pull out",
    "pan_left": "slow camera pan to the left",
    "pan_right": "slow camera pan to the right",
    "rise": "camera slowly rises",
    "still": "static camera, subtle ambient motion",
}


def motion_prompt(request: AnimateRequest) -> str:
    return ", ".join(p for p in (request.prompt.strip(), MOTION_PROMPTS[request.motion]) if p)


def music_prompt(request: MusicRequest) -> str:
    """What a text-to-music model is asked for: a bed under narration, so no vocals."""
    mood = request.mood.strip() or "calm"
    return (f"{mood} instrumental background score for a narrated short story, gentle and "
            "steady, no vocals, no lyrics")


def music_seconds(duration_s: float, shortest: int, longest: int) -> int:
    """The clip length to ask a music model for: the story's length in whole seconds, within
    the model's bounds (a shorter clip is looped under the story by the assembler)."""
    return min(longest, max(shortest, math.ceil(duration_s)))


def music_inputs(model: str, request: MusicRequest, seconds: int) -> dict[str, Any]:
    """Prompt, seed and length, in the field the model family reads for the length: Stable
    Audio's ``seconds_total``, ``duration`` for MusicGen and most others."""
    key = "seconds_total" if "stable-audio" in model.lower() else "duration"
    return {"prompt": music_prompt(request), "seed": request.seed, key: seconds}


def nearest_aspect(width: int, height: int, choices: Iterable[str]) -> str:
    """The ``"w:h"`` from ``choices`` closest to ``width/height``."""

    def ratio(choice: str) -> float:
        w, _, h = choice.partition(":")
        return float(w) / float(h)

    return min(choices, key=lambda c: abs(ratio(c) - width / height))


async def poll_until(
    service: Service,
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    deadline_s: float,
    interval_s: float,
    what: str,
    max_interval_s: float = 10.0,
) -> T:
    """Call ``fetch`` until ``done`` says so or ``deadline_s`` passes (ProviderUnavailable)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    wait = interval_s
    while True:
        state = await fetch()
        if done(state):
            return state
        remaining = end - loop.time()
        if remaining <= 0:
            raise ProviderUnavailable(service.name, f"{what} still running after {deadline_s:g}s")
        await asyncio.sleep(min(wait, remaining))
        wait = min(wait * 1.5, max_interval_s)


class JobLost(ProviderUnavailable):
    """The service does not know the job (any more): only a new submission can make it."""


class JobFailed(ProviderUnavailable):
    """The service reports the job failed: a new submission may work."""


class JobTimedOut(ProviderUnavailable):
    """The job outran its deadline and was cancelled."""


Cancel = Callable[[Any], Awaitable[bool]]


async def poll_job(
    service: Service,
    status_url: str,
    *,
    done: set[str],
    pending: set[str],
    cancel: Cancel | None,
    deadline_s: float,
    interval_s: float,
    what: str,
) -> Any:
    """Poll a job's status URL until its ``status`` is in ``done``; an unknown status is a
    :class:`ProviderBadResponse`, a job the service no longer knows (404, 410) a :class:`JobLost`.

    ``cancel(last_state)`` asks the service to stop the job and says whether it confirmed that
    the job will not run. It is called at the deadline (then :class:`JobTimedOut`), and once the
    caller's job log is ``stopping``: a confirmed cancel raises :class:`JobStopped`; a job the
    service will finish anyway is waited for, so that what it costs is used and recorded."""
    journal = current_job_log()
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    wait = interval_s
    asked = False
    while True:
        try:
            state = await service.json("GET", status_url, kind="poll", what="status")
        except ProviderBadRequest as err:
            if err.status in (404, 410):
                raise JobLost(service.name, f"{what} is unknown to the service") from err
            raise
        status = state.get("status") if isinstance(state, dict) else None
        if status in done:
            return state
        if status not in pending:
            raise ProviderBadResponse(service.name, f"unknown job status {status!r}")
        if journal is not None and journal.stopping and cancel is not None and not asked:
            asked = True
            if await _cancel(service, cancel, state):
                raise JobStopped(service.name, f"{what} cancelled: the rest of the work failed")
        remaining = end - loop.time()
        if remaining <= 0:
            if cancel is not None:
                await _cancel(service, cancel, state)
            raise JobTimedOut(service.name, f"{what} still running after {deadline_s:g}s")
        await _nap(journal, min(wait, remaining))
        wait = min(wait * 1.5, 10.0)


async def _nap(journal: JobLog | None, seconds: float) -> None:
    """Sleep between status checks, waking early when the caller gives up on the job."""
    if journal is None or journal.stopping:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(journal.until_stopping(), seconds)


async def _cancel(service: Service, cancel: Cancel, state: Any) -> bool:
    """Best effort: a cancel that fails leaves the job to run (and be waited for)."""
    try:
        return await cancel(state)
    except Exception:
        log.debug("cancel failed", exc_info=True, extra={"provider": service.name})
        return False


def job_entry(service: str, model: str, submitted: Any) -> str:
    """The job-log name of a submission: the service, the model and a hash of what is sent."""
    body = json.dumps(submitted, sort_keys=True, separators=(",", ":"), default=str)
    return f"{service}:{model}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"


async def run_clip_job(
    service: Service,
    model: str,
    request: AnimateRequest,
    submit: Callable[[], Awaitable[str]],
    follow: Callable[[str], Awaitable[T]],
) -> T:
    """:func:`run_job` for an image-to-video service whose job is named by one id: the
    submission is known by the model, the frame's hash and the request's other fields."""
    fingerprint = {"model": model, "image": hashlib.sha256(request.image.data).hexdigest(),
                   **request.model_dump(mode="json", exclude={"image"})}

    async def start() -> JobRef:
        return JobRef(service=service.name, id=await submit())

    async def go(job: JobRef) -> T:
        return await follow(job.id)

    return await run_job(service, model, fingerprint, start, go)


async def run_job(
    service: Service,
    model: str,
    submitted: Any,
    submit: Callable[[], Awaitable[JobRef]],
    follow: Callable[[JobRef], Awaitable[T]],
) -> T:
    """Run one paid job once, whatever happens to this process.

    Holds one of the service's slots from submission to result. With a job log set by the
    caller (:func:`providers.base.job_log`), the job is recorded the moment the service names
    it, before any waiting; a call made again follows the recorded job instead of submitting a
    second one, and submits again only when the service lost the job or reported it failed. A
    job interrupted here (a worker stopping) stays recorded, to be resumed."""
    journal = current_job_log()
    entry = job_entry(service.name, model, submitted)
    async with service.job_slot(entry):
        if journal is not None:
            job = await journal.recall(entry)
            if job is not None:
                log.info("resuming a job", extra={"provider": service.name, "job": job.id})
                try:
                    return await _follow(journal, entry, follow, job)
                except JobLost:
                    log.warning("the service lost a job; submitting it again",
                                extra={"provider": service.name, "job": job.id})
            if journal.stopping:
                raise JobStopped(service.name, "not started: the rest of the work failed")
        job = await submit()
        if journal is not None:
            await asyncio.shield(journal.record(entry, job))
        return await _follow(journal, entry, follow, job)


async def _follow(
    journal: JobLog | None, entry: str, follow: Callable[[JobRef], Awaitable[T]], job: JobRef
) -> T:
    try:
        return await follow(job)
    except (JobLost, JobFailed, JobTimedOut, JobStopped):
        if journal is not None:
            await journal.forget(entry)
        raise
    except ProviderUnavailable:
        raise  # the service could not be asked: the job may still be running; resume it later
    except ProviderError:
        if journal is not None:  # the job failed: a new call must submit again
            await journal.forget(entry)
        raise


def field_of(provider: str, payload: Any, *path: str | int) -> Any:
    """``payload[path...]`` or ProviderBadResponse naming the missing piece."""
    cur = payload
    for key in path:
        try:
            cur = cur[key]
        except (KeyError, IndexError, TypeError) as err:
            where = ".".join(str(p) for p in path)
            raise ProviderBadResponse(provider, f"answer has no {where}") from err
    return cur


__all__ = [
    "Probe",
    "ProviderError",
    "RetryPolicy",
    "Service",
    "check_media",
    "close_client",
    "configure_redis",
    "data_uri",
    "field_of",
    "get_client",
    "job_entry",
    "parse_retry_after",
    "poll_job",
    "poll_until",
    "redact",
    "run_job",
    "sniff",
]


class HttpProvider:
    """What every keyed HTTP provider sets up the same way: its model, base URL, price table and
    a :class:`Service` that sends the key as ``header: scheme + key`` and never logs it.
    Subclasses name the service's settings in :meth:`endpoint`."""

    name: ClassVar[str]
    default_model: ClassVar[str] = ""
    header: ClassVar[str] = "Authorization"
    scheme: ClassVar[str] = "Bearer "

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        self.model = model or self.default_model
        base_url, key = self.endpoint(settings)
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.prices = PriceTable(settings.price_overrides)
        header, scheme = self.header, self.scheme

        def auth() -> dict[str, str]:
            secret = key.get_secret_value()
            return {header: f"{scheme}{secret}"} if secret else {}

        self.service = Service(self.name, settings, auth=auth,
                               secrets=lambda: [key.get_secret_value()], refusal=self.refusal)

    @staticmethod
    def endpoint(settings: ProviderSettings) -> tuple[str, SecretStr]:
        raise NotImplementedError

    @staticmethod
    def refusal(response: Any, payload: Any) -> str | None:
        """The service's own content-policy refusal in an answer, if it is one."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> Self:
        return cls(model, settings)
