"""Fakes of OpenAI, fal.ai, Replicate, ElevenLabs and ComfyUI, each in its documented format."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.base import RECORDED, FakeService, Recorded, load, mp4, png

GOOD_KEY = "sk-test-0123456789abcdef"


def wav(seconds: float = 0.5, rate: int = 24000) -> bytes:
    pcm = b"\x00\x01" * int(seconds * rate)
    n = len(pcm)
    return (
        b"RIFF" + (36 + n).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
        + (rate * 2).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + n.to_bytes(4, "little") + pcm
    )


async def mp3(seconds: float) -> bytes:
    """A real MP3 of a quiet tone, made by the ffmpeg that ships with imageio-ffmpeg."""
    from providers.offline.ffmpeg import run_ffmpeg

    return await run_ffmpeg(["-f", "lavfi", "-i", f"sine=frequency=220:duration={seconds}",
                       "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3", "-"])


_REAL_MP4: bytes | None = None


async def real_mp4() -> bytes:
    """A real (tiny, one second, H.264) MP4 that the assembler can read, made once."""
    global _REAL_MP4
    if _REAL_MP4 is None:
        from providers.offline.ffmpeg import run_ffmpeg

        _REAL_MP4 = await run_ffmpeg([
            "-f", "lavfi", "-i", "color=c=navy:s=96x160:d=1:r=12", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "-"])
    return _REAL_MP4


class _Keyed(FakeService):
    """Answers 401 in the service's own format unless the expected credential is sent."""

    auth_header = "Authorization"
    auth_prefix = "Bearer "
    error_401 = "openai_error_401.json"

    def __init__(self, key: str = GOOD_KEY) -> None:
        self.key = key
        super().__init__()

    def denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get(self.auth_header) == f"{self.auth_prefix}{self.key}":
            return None
        return web.json_response(load(self.error_401), status=401)


# --------------------------------------------------------------------------- OpenAI


class FakeOpenAI(_Keyed):
    def __init__(self, key: str = GOOD_KEY) -> None:
        self.chat_answers: list[Any] = []  # str -> message content; dict -> whole payload
        self.reject_json_schema = False
        self.image_bytes = png()
        super().__init__(key)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/chat/completions", self.chat)
        router.add_post("/v1/images/generations", self.images)
        router.add_post("/v1/images/edits", self.images)
        router.add_post("/v1/audio/speech", self.speech)
        router.add_get("/v1/models", self.models)

    async def chat(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        body = request[RECORDED].json
        if self.reject_json_schema and body["response_format"]["type"] == "json_schema":
            return web.json_response(load("openai_error_response_format.json"), status=400)
        answer = self.chat_answers.pop(0)
        if isinstance(answer, dict):
            return web.json_response(answer)
        payload = load("openai_chat_completion.json")
        payload["choices"][0]["message"]["content"] = answer
        return web.json_response(payload)

    async def images(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        rec = request[RECORDED]
        n = int((rec.json or rec.form).get("n", 1))
        b64 = base64.b64encode(self.image_bytes).decode()
        payload = load("openai_images_response.json", b64=b64)
        payload["data"] = payload["data"] * n
        return web.json_response(payload)

    async def speech(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        return web.Response(body=wav(0.5), content_type="audio/wav")

    async def models(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        return web.json_response(load("openai_models.json"))


# --------------------------------------------------------------------------- billing


@dataclass
class Charge:
    """One line of a fake service's bill: what a finished job cost, in the service's units."""

    job: str
    model: str
    units: float
    unit: str
    usd: float


class _Billing:
    """A per-account limit on jobs running at once (answered with the service's 429) and the
    bill of every job that finished. List prices as the services publish them."""

    service = ""
    too_many = ""  # the detail of the service's 429 answer

    def __init__(self) -> None:
        self.account_limit: int | None = None  # jobs running at once before a 429
        self.job_s = 0.0  # >0: a job takes this long (by the clock), not a number of polls
        self.queue_s: float | None = None  # of which it waits in the queue (default a tenth)
        self.running: set[str] = set()
        self.peak_running = 0
        self.rejected_429 = 0
        self.bill: list[Charge] = []
        self.cancelled: list[str] = []

    def admit(self, job: str) -> web.Response | None:
        if self.account_limit is not None and len(self.running) >= self.account_limit:
            self.rejected_429 += 1
            return web.json_response({"detail": self.too_many}, status=429)
        self.running.add(job)
        self.peak_running = max(self.peak_running, len(self.running))
        return None

    def charge(self, job: str, model: str, inputs: dict[str, Any], kind: str) -> None:
        from providers.pricing import PriceTable

        self.running.discard(job)
        if kind == "video":
            units, unit = float(inputs.get("duration") or 5), "second"
        elif kind == "audio":
            units = float(inputs.get("seconds_total") or inputs.get("duration") or 0)
            unit = "second"
        else:
            units = float(inputs.get("num_images") or inputs.get("num_outputs") or 1)
            unit = "image"
        price = PriceTable().price(self.service, model, unit)  # type: ignore[arg-type]
        self.bill.append(Charge(job, model, units, unit, round(units * price.usd, 8)))

    def drop(self, job: str) -> None:
        self.running.discard(job)
        self.cancelled.append(job)

    @property
    def billed_usd(self) -> float:
        return round(sum(c.usd for c in self.bill), 6)


# --------------------------------------------------------------------------- fal.ai


class FakeFal(_Billing, _Keyed):
    auth_prefix = "Key "
    error_401 = "fal_error_401.json"
    service = "fal"
    too_many = "Too many concurrent requests for this user"

    def __init__(self, key: str = GOOD_KEY) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.statuses = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
        self.refuse_words: set[str] = set()  # refused when the result is fetched
        self.reject_words: set[str] = set()  # refused at submission (422)
        self.reject_nth: set[int] = set()  # the n-th submissions (from 1) are refused (422)
        self.real_media = False  # clips a video assembler can read, not just sniffable bytes
        self.flag_nsfw = False
        self.never_complete = False
        self.files: dict[str, tuple[bytes, str]] = {}
        _Billing.__init__(self)
        _Keyed.__init__(self, key)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/files/{name}", self.file)
        router.add_get(r"/{owner}/{app}/requests/{id}/status", self.status)
        router.add_put(r"/{owner}/{app}/requests/{id}/cancel", self.cancel)
        router.add_get(r"/{owner}/{app}/requests/{id}", self.result)
        router.add_post(r"/{model:.+}", self.submit)

    async def file(self, request: web.Request) -> web.Response:
        data, ctype = self.files[request.match_info["name"]]
        return web.Response(body=data, content_type=ctype)

    def submits(self) -> list[Recorded]:
        """Every job submission (the paid requests), in order."""
        return [r for r in self.requests if r.method == "POST" and "/requests/" not in r.path]

    async def submit(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        model = request.match_info["model"]
        app = "/".join(model.split("/")[:2])
        job_id = str(uuid.uuid4())
        prompt = str((request[RECORDED].json or {}).get("prompt", "")).lower()
        if any(w in prompt for w in self.reject_words) or len(self.submits()) in self.reject_nth:
            return web.json_response(load("fal_error_422_content_policy.json"), status=422)
        if (busy := self.admit(job_id)) is not None:
            return busy
        self.jobs[job_id] = {"model": model, "input": request[RECORDED].json,
                             "statuses": list(self.statuses), "app": app,
                             "at": asyncio.get_running_loop().time(), "state": "IN_QUEUE"}
        return web.json_response(load("fal_submit.json", id=job_id, base=self.url, app=app))

    def _kind(self, job: dict[str, Any]) -> str:
        model = job["model"]
        return ("audio" if "audio" in model else
                "video" if "video" in model or "i2v" in model else "image")

    def _advance(self, job_id: str, job: dict[str, Any]) -> str:
        if job["state"] == "COMPLETED":
            return "COMPLETED"
        if self.never_complete:
            state = "IN_PROGRESS"
        elif self.job_s > 0:
            age = asyncio.get_running_loop().time() - job["at"]
            queued = self.job_s / 10 if self.queue_s is None else self.queue_s
            state = ("COMPLETED" if age >= self.job_s else
                     "IN_QUEUE" if age < queued else "IN_PROGRESS")
        else:
            state = job["statuses"].pop(0) if len(job["statuses"]) > 1 else job["statuses"][0]
        job["state"] = state
        prompt = str(job["input"].get("prompt", "")).lower()
        if state == "COMPLETED" and any(w in prompt for w in self.refuse_words):
            self.running.discard(job_id)  # refused outputs are not billed
        elif state == "COMPLETED":
            self.charge(job_id, job["model"], job["input"], self._kind(job))
        return str(state)

    async def status(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        job_id = request.match_info["id"]
        job = self.jobs.get(job_id)
        if job is None or job.get("cancelled"):
            return web.json_response({"detail": "Request not found"}, status=404)
        state = self._advance(job_id, job)
        name = f"fal_status_{state.lower()}.json"
        return web.json_response(load(name, id=job_id, base=self.url, app=job["app"]))

    async def cancel(self, request: web.Request) -> web.Response:
        """A queued request is removed (and never billed); one already running is signalled,
        and this fake's app ignores the signal (it finishes, and is billed)."""
        if (denied := self.denied(request)) is not None:
            return denied
        job_id = request.match_info["id"]
        job = self.jobs.get(job_id)
        if job is None or job.get("cancelled"):
            return web.json_response({"status": "NOT_FOUND"}, status=404)
        if job["state"] == "COMPLETED":
            return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
        if job["state"] == "IN_QUEUE":
            job["cancelled"] = True
            self.drop(job_id)
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    async def result(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["id"])
        if job is None or job["state"] != "COMPLETED":
            return web.json_response({"detail": "Request is still in progress"}, status=400)
        prompt = str(job["input"].get("prompt", "")).lower()
        if any(w in prompt for w in self.refuse_words):
            return web.json_response(load("fal_error_422_content_policy.json"), status=422)
        name = uuid.uuid4().hex
        if "audio" in job["model"]:
            self.files[name] = (wav(1.0), "audio/wav")
            return web.json_response(load("fal_result_audio.json", url=f"{self.url}/files/{name}"))
        if "video" in job["model"] or "i2v" in job["model"]:
            self.files[name] = (await real_mp4() if self.real_media else mp4(), "video/mp4")
            return web.json_response(load("fal_result_video.json", url=f"{self.url}/files/{name}"))
        self.files[name] = (png(), "image/png")
        payload = load("fal_result_image.json", url=f"{self.url}/files/{name}",
                       seed=job["input"].get("seed", 0))
        payload["images"] = payload["images"] * int(job["input"].get("num_images", 1))
        payload["has_nsfw_concepts"] = [self.flag_nsfw] * len(payload["images"])
        return web.json_response(payload)


# --------------------------------------------------------------------------- Replicate


class FakeReplicate(_Billing, _Keyed):
    error_401 = "replicate_error_401.json"
    service = "replicate"
    too_many = "Request was throttled. Your rate limit resets in ~30s."

    def __init__(self, key: str = GOOD_KEY) -> None:
        self.sync = True  # finish as soon as it is created
        self.outcome = "succeeded"  # or "nsfw", "failed"
        self.polls_before_done = 2
        self.lose_answers = 0  # creations whose answer is held back for lose_for_s
        self.lose_for_s = 2.0
        self.real_media = False  # clips a video assembler can read, not just sniffable bytes
        self.predictions: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        _Billing.__init__(self)
        _Keyed.__init__(self, key)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/files/{name}", self.file)
        router.add_post("/v1/models/{owner}/{name}/predictions", self.create)
        router.add_post("/v1/predictions", self.create)
        router.add_get("/v1/predictions", self.list)
        router.add_get("/v1/predictions/{id}", self.get)
        router.add_post("/v1/predictions/{id}/cancel", self.cancel)
        router.add_get("/v1/account", self.account)

    async def file(self, request: web.Request) -> web.Response:
        data, ctype = self.files[request.match_info["name"]]
        return web.Response(body=data, content_type=ctype)

    def submits(self) -> list[Recorded]:
        """Every prediction created (the paid requests), in order."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/predictions")]

    def _finish(self, pid: str, pred: dict[str, Any], kind: str, n: int) -> None:
        if self.outcome == "nsfw":
            pred["status"] = "failed"
            pred["error"] = load_text("replicate_nsfw_error.txt")
            self.running.discard(pid)
            return
        if self.outcome == "failed":
            pred["status"] = "failed"
            pred["error"] = "CUDA error: an illegal memory access was encountered"
            self.running.discard(pid)
            return
        urls = []
        for _ in range(n):
            name = uuid.uuid4().hex
            video = _REAL_MP4 if self.real_media and _REAL_MP4 else mp4()
            self.files[name] = {"video": (video, "video/mp4"), "audio": (wav(1.0), "audio/wav"),
                                "image": (png(), "image/png")}[kind]
            urls.append(f"{self.url}/files/{name}")
        pred["status"] = "succeeded"
        pred["output"] = urls if kind == "image" else urls[0]  # one URI for video and audio
        self.charge(pid, str(pred["model"]), pred["input"], kind)

    async def create(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        body = request[RECORDED].json
        model = (f"{request.match_info['owner']}/{request.match_info['name']}"
                 if "owner" in request.match_info else "version:" + body["version"])
        pid = uuid.uuid4().hex[:26]
        if (busy := self.admit(pid)) is not None:
            return busy
        pred = load("replicate_prediction.json", id=pid, model=model, base=self.url + "/v1",
                    status="starting")
        pred["input"] = body["input"]
        inputs = body["input"]
        kind = ("video" if "start_image" in inputs or "image" in inputs else
                "audio" if "seconds_total" in inputs or inputs.get("output_format") == "wav" else
                "image")
        n = int(inputs.get("num_outputs", 1))
        self.predictions[pid] = {"pred": pred, "kind": kind, "n": n,
                                 "polls": self.polls_before_done,
                                 "at": asyncio.get_running_loop().time()}
        if self.real_media:
            await real_mp4()
        if self.sync:
            self._finish(pid, pred, kind, n)
        if self.lose_answers > 0:  # created, but the answer never arrives in time
            self.lose_answers -= 1
            await asyncio.sleep(self.lose_for_s)
        return web.json_response(pred, status=201)

    async def list(self, request: web.Request) -> web.Response:
        """The account's predictions, newest first, each with its input (one page)."""
        if (denied := self.denied(request)) is not None:
            return denied
        results = [e["pred"] for e in reversed(self.predictions.values())]
        return web.json_response({"previous": None, "next": None, "results": results})

    async def get(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        pid = request.match_info["id"]
        entry = self.predictions.get(pid)
        if entry is None:
            return web.json_response({"detail": "Not found."}, status=404)
        pred = entry["pred"]
        if pred["status"] in ("starting", "processing"):
            entry["polls"] -= 1
            pred["status"] = "processing"
            age = asyncio.get_running_loop().time() - entry["at"]
            if (self.job_s > 0 and age >= self.job_s) or (self.job_s <= 0 and entry["polls"] <= 0):
                self._finish(pid, pred, entry["kind"], entry["n"])
        return web.json_response(pred)

    async def cancel(self, request: web.Request) -> web.Response:
        """A prediction still starting or processing is canceled (and not billed); a finished
        one is answered as it stands."""
        if (denied := self.denied(request)) is not None:
            return denied
        pid = request.match_info["id"]
        entry = self.predictions.get(pid)
        if entry is None:
            return web.json_response({"detail": "Not found."}, status=404)
        pred = entry["pred"]
        if pred["status"] in ("starting", "processing"):
            pred["status"] = "canceled"
            self.drop(pid)
        return web.json_response(pred)

    async def account(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        return web.json_response(load("replicate_account.json"))


def load_text(name: str) -> str:
    from tests.fakes.base import DATA

    return (DATA / name).read_text(encoding="utf-8").strip()


# --------------------------------------------------------------------------- ElevenLabs


class FakeElevenLabs(_Keyed):
    auth_header = "xi-api-key"
    auth_prefix = ""
    error_401 = "elevenlabs_error_401.json"
    CHAR_S = 0.05
    RATE = 24000

    def __init__(self, key: str = GOOD_KEY) -> None:
        self.truncate_audio = False
        self.mp3: bytes | None = None  # what /v1/music answers instead of a real track
        super().__init__(key)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/text-to-speech/{voice}/with-timestamps", self.tts)
        router.add_post("/v1/music", self.music)
        router.add_get("/v1/user", self.user)

    async def music(self, request: web.Request) -> web.Response:
        """The track's bytes, MP3 as the API's default ``mp3_44100_128`` output."""
        if (denied := self.denied(request)) is not None:
            return denied
        body = request[RECORDED].json
        length = body.get("music_length_ms")
        if not isinstance(length, int) or not 10_000 <= length <= 300_000:
            return web.json_response({"detail": {"status": "invalid_music_length", "message":
                                      "music_length_ms must be between 10000 and 300000"}},
                                     status=422)
        return web.Response(body=self.mp3 or await mp3(length / 1000), content_type="audio/mpeg")

    async def tts(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        text = request[RECORDED].json["text"]
        chars = list(text)
        starts = [round(i * self.CHAR_S, 3) for i in range(len(chars))]
        ends = [round((i + 1) * self.CHAR_S, 3) for i in range(len(chars))]
        pcm = b"\x01\x00" * int(len(chars) * self.CHAR_S * self.RATE)
        if self.truncate_audio:
            pcm = pcm[:-1]
        payload = load("elevenlabs_with_timestamps.json", audio=base64.b64encode(pcm).decode(),
                       chars=json.dumps(chars), starts=json.dumps(starts), ends=json.dumps(ends))
        return web.json_response(payload)

    async def user(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        return web.json_response(load("elevenlabs_user.json"))


# --------------------------------------------------------------------------- ComfyUI


class FakeComfyUI(FakeService):
    def __init__(self) -> None:
        self.mode = "ok"  # "ok" | "error" | "no_ws"
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.done: set[str] = set()
        self.uploads: dict[str, bytes] = {}
        self.prompts: dict[str, Any] = {}
        self.ws_messages_sent: list[str] = []
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ws", self.ws)
        router.add_post("/prompt", self.prompt)
        router.add_get("/history/{id}", self.history)
        router.add_get("/view", self.view)
        router.add_post("/upload/image", self.upload)
        router.add_get("/system_stats", self.stats)

    async def ws(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "no_ws":
            return web.Response(status=404, text="404: Not Found")
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        client = request.query.get("clientId", "")
        self.sockets[client] = sock
        await sock.send_json(load("comfyui_ws_messages.json", id="", client=client)[0])
        async for msg in sock:
            if msg.type == WSMsgType.CLOSE:
                break
        return sock

    async def _run(self, prompt_id: str, client: str) -> None:
        sock = self.sockets.get(client)
        name = "comfyui_ws_error.json" if self.mode == "error" else "comfyui_ws_messages.json"
        messages = load(name, id=prompt_id, client=client)
        await asyncio.sleep(0.02)
        if self.mode != "error":
            self.done.add(prompt_id)
        if sock is None:
            return
        await sock.send_bytes(b"\x00\x00\x00\x01preview")  # a binary preview frame
        for m in messages:
            await sock.send_json(m)
            self.ws_messages_sent.append(m["type"])

    async def prompt(self, request: web.Request) -> web.Response:
        body = request[RECORDED].json
        if not isinstance(body, dict) or "prompt" not in body:
            return web.json_response(load("comfyui_error_400.json"), status=400)
        prompt_id = str(uuid.uuid4())
        self.prompts[prompt_id] = body["prompt"]
        asyncio.get_running_loop().create_task(self._run(prompt_id, body.get("client_id", "")))
        return web.json_response(load("comfyui_prompt_response.json", id=prompt_id))

    async def history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["id"]
        if prompt_id not in self.done:
            return web.json_response({})
        return web.json_response(load("comfyui_history.json", id=prompt_id))

    async def view(self, request: web.Request) -> web.Response:
        if request.query.get("type") != "output" or "filename" not in request.query:
            return web.Response(status=404)
        return web.Response(body=png((10, 120, 200)), content_type="image/png")

    async def upload(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        field, filename, data = rec.files[0]
        assert field == "image"
        self.uploads[filename] = data
        return web.json_response(load("comfyui_upload_response.json", name=filename))

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"comfyui_version": "0.3.40"}, "devices": []})
