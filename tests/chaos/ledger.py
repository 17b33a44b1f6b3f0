"""fal.ai's queue as a billing service: jobs that take real time, and a bill.

:class:`BilledFal` keeps FakeFal's routes and payloads but runs each request on a clock instead of
a list of statuses: it waits ``IN_QUEUE`` for a moment, runs ``IN_PROGRESS`` for the rest of a
seeded latency (0.5-1 s), then is ``COMPLETED``, whether or not anyone polls it, as on the real
service. Every submission is logged with a fingerprint of its model and inputs, and every job that
runs is billed in the service's own units (an image, a second of the video the model returns,
Kling's 5 or 10 s) at the project's price table, so the suite can compare the bill with the costs
the stories recorded.

Billing follows fal's documentation: a request cancelled while still in the queue is removed and
costs nothing; a cancellation sent once the runner has it is only a signal, so that job runs on and
is billed; a request the model app rejects (here: a content-policy error) is not billed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from providers.pricing import PriceTable
from tests.fakes.base import RECORDED, load, png
from tests.fakes.services import FakeFal, FakeReplicate

QUEUED_SHARE = 0.2  # the part of a job's latency spent IN_QUEUE (cancellable for free)


def fingerprint(model: str, inputs: Any) -> str:
    """The identity of a paid request: its model and every input, references included."""
    raw = json.dumps({"model": model, "input": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class Job:
    service: str
    id: str
    model: str
    kind: str  # image | video | audio
    fp: str
    prompt: str
    submitted: float
    latency: float
    units: float
    unit: str
    usd: float
    rejected: bool = False  # the app refuses it (content policy): not billed
    cancelled_in_queue: bool = False
    cancel_requested: bool = False
    polls: int = 0
    fetched: bool = False

    def state(self, now: float) -> str:
        if self.cancelled_in_queue:
            return "CANCELLED"
        age = now - self.submitted
        if age < self.latency * QUEUED_SHARE:
            return "IN_QUEUE"
        return "IN_PROGRESS" if age < self.latency else "COMPLETED"

    @property
    def billed(self) -> bool:
        return not (self.rejected or self.cancelled_in_queue)

    def line(self, t0: float) -> str:
        flags = [f for f, on in (("rejected", self.rejected),
                                 ("cancelled-unmade", self.cancelled_in_queue),
                                 ("cancel-requested", self.cancel_requested),
                                 ("result-fetched", self.fetched)) if on]
        return (f"t={self.submitted - t0:7.2f}s {self.service} {self.kind:<5} fp={self.fp} "
                f"id={self.id[:8]} ${self.usd:.4f} ({self.units:g} {self.unit}) polls={self.polls} "
                f"{' '.join(flags)} | {self.prompt[:60]!r}")


@dataclass
class Bill:
    """What the fake service saw and charged."""

    jobs: list[Job] = field(default_factory=list)

    @property
    def usd(self) -> float:
        return round(sum(j.usd for j in self.jobs if j.billed), 6)

    def repeated(self, *, paid_only: bool) -> list[Job]:
        """Submissions whose fingerprint was submitted before (``paid_only``: both billed)."""
        seen: Counter[str] = Counter()
        out = []
        for job in self.jobs:
            if paid_only and not job.billed:
                continue
            if seen[job.fp]:
                out.append(job)
            seen[job.fp] += 1
        return out

    def resubmitted_after_success(self) -> list[Job]:
        """Identical submissions where an earlier one was not refused by the service: the only
        repeats a correct client may not make (a refused or unbilled job may be asked again)."""
        ok_before: set[str] = set()
        out = []
        for job in self.jobs:
            if job.fp in ok_before:
                out.append(job)
            if not job.rejected and not job.cancelled_in_queue:
                ok_before.add(job.fp)
        return out

    def log_lines(self, fps: set[str] | None = None) -> list[str]:
        t0 = self.jobs[0].submitted if self.jobs else 0.0
        return [j.line(t0) for j in self.jobs if fps is None or j.fp in fps]


def _kind(model: str) -> str:
    m = model.lower()
    if "audio" in m:
        return "audio"
    if "video" in m or "i2v" in m:
        return "video"
    return "image"


class BilledFal(FakeFal):
    """FakeFal on a clock, with a request log and a bill (see the module docstring)."""

    def __init__(self, rng: random.Random, clip: bytes, latency: tuple[float, float] = (0.5, 1.0),
                 ledger: Bill | None = None) -> None:
        self.rng = rng
        self.clip = clip
        self.latency = latency
        self.prices = PriceTable()
        self.ledger = ledger or Bill()
        self.by_id: dict[str, Job] = {}
        # a predicate on (kind, inputs): the app refuses matching requests (a failing scene)
        self.reject: Callable[[str, dict[str, Any]], bool] | None = None
        self.reject_latency: float | None = None  # how soon a refused request fails
        super().__init__()

    # ------------------------------------------------------------------ pricing

    def _charge(self, model: str, kind: str, inputs: dict[str, Any]) -> tuple[float, str, float]:
        if kind == "image":
            units, per = float(inputs.get("num_images", 1)), "image"
        elif kind == "video":
            # the clip the model makes: Kling bills its own 5 or 10 s buckets
            units, per = float(inputs.get("duration", 5)), "second"
        else:
            units, per = float(inputs.get("seconds_total", inputs.get("duration", 10))), "second"
        price = self.prices.price("fal", model, per)  # type: ignore[arg-type]
        return units, per, round(units * price.usd, 8)

    # ------------------------------------------------------------------ routes

    async def submit(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        model = request.match_info["model"]
        app = "/".join(model.split("/")[:2])
        inputs = request[RECORDED].json or {}
        kind = _kind(model)
        units, unit, usd = self._charge(model, kind, inputs)
        job = Job(
            service="fal", id=str(uuid.uuid4()), model=model, kind=kind,
            fp=fingerprint(model, inputs),
            prompt=str(inputs.get("prompt", "")), submitted=asyncio.get_running_loop().time(),
            latency=self.rng.uniform(*self.latency), units=units, unit=unit, usd=usd,
        )
        job.rejected = bool(self.reject and self.reject(kind, inputs))
        if job.rejected and self.reject_latency is not None:
            job.latency = self.reject_latency
        self.ledger.jobs.append(job)
        self.by_id[job.id] = job
        self.jobs[job.id] = {"model": model, "input": inputs, "statuses": [], "app": app}
        return web.json_response(load("fal_submit.json", id=job.id, base=self.url, app=app))

    def _job(self, request: web.Request) -> Job | None:
        return self.by_id.get(request.match_info["id"])

    async def status(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        job = self._job(request)
        if job is None:
            return web.json_response({"detail": "Request not found"}, status=404)
        job.polls += 1
        state = job.state(asyncio.get_running_loop().time())
        if state == "CANCELLED":  # removed from the queue: fal no longer knows it
            return web.json_response({"detail": "Request not found"}, status=404)
        app = "/".join(job.model.split("/")[:2])
        return web.json_response(load(f"fal_status_{state.lower()}.json", id=job.id,
                                      base=self.url, app=app))

    async def cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"status": "NOT_FOUND"}, status=404)
        state = job.state(asyncio.get_running_loop().time())
        if state == "COMPLETED":
            return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
        job.cancel_requested = True
        if state == "IN_QUEUE":
            job.cancelled_in_queue = True
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    async def result(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        job = self._job(request)
        if job is None:
            return web.json_response({"detail": "Request not found"}, status=404)
        state = job.state(asyncio.get_running_loop().time())
        if state != "COMPLETED":
            return web.json_response({"detail": f"Request is {state}"}, status=400)
        if job.rejected:
            return web.json_response(load("fal_error_422_content_policy.json"), status=422)
        job.fetched = True
        name = uuid.uuid4().hex
        inputs = self.jobs[job.id]["input"]
        if job.kind == "video":
            self.files[name] = (self.clip, "video/mp4")
            return web.json_response(load("fal_result_video.json", url=f"{self.url}/files/{name}"))
        # every image distinct, as a model's are: its colour follows from its inputs
        digest = bytes.fromhex(job.fp)
        self.files[name] = (png((digest[0], digest[1], digest[2]), (64, 64)), "image/png")
        payload = load("fal_result_image.json", url=f"{self.url}/files/{name}",
                       seed=inputs.get("seed", 0))
        payload["images"] = payload["images"] * int(inputs.get("num_images", 1))
        payload["has_nsfw_concepts"] = [False] * len(payload["images"])
        return web.json_response(payload)


class BilledReplicate(FakeReplicate):
    """Replicate's predictions on the same clock and ledger as :class:`BilledFal`: ``starting``,
    then ``processing``, then ``succeeded`` at the seeded latency. A prediction canceled before
    it succeeds makes nothing and, for these per-output models, costs nothing."""

    def __init__(self, rng: random.Random, clip: bytes, ledger: Bill,
                 latency: tuple[float, float] = (0.5, 1.0)) -> None:
        self.rng, self.clip, self.ledger, self.latency = rng, clip, ledger, latency
        self.prices = PriceTable()
        self.by_id: dict[str, Job] = {}
        self.canceled: set[str] = set()
        super().__init__()

    def _state(self, pid: str) -> dict[str, Any]:
        """The prediction as it stands now (its status follows the clock)."""
        entry = self.predictions[pid]
        pred, job = entry["pred"], self.by_id[pid]
        if pred["status"] in ("starting", "processing"):
            age = asyncio.get_running_loop().time() - job.submitted
            if age >= job.latency:
                pred["status"] = "succeeded"
                urls = []
                for _ in range(entry["n"]):
                    name = uuid.uuid4().hex
                    if job.kind == "video":
                        self.files[name] = (self.clip, "video/mp4")
                    else:
                        digest = bytes.fromhex(job.fp)
                        self.files[name] = (png((digest[2], digest[0], digest[1]), (64, 64)),
                                            "image/png")
                    urls.append(f"{self.url}/files/{name}")
                pred["output"] = urls if job.kind == "image" else urls[0]
            elif age >= job.latency * QUEUED_SHARE:
                pred["status"] = "processing"
        return dict(pred)

    async def create(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        body = request[RECORDED].json
        model = (f"{request.match_info['owner']}/{request.match_info['name']}"
                 if "owner" in request.match_info else "version:" + body["version"])
        inputs = body["input"]
        kind = "video" if "start_image" in inputs or "image" in inputs else "image"
        if kind == "video":
            units, unit = float(inputs.get("duration", 5)), "second"
        else:
            units, unit = float(inputs.get("num_outputs", 1)), "image"
        usd = round(units * self.prices.price("replicate", model, unit).usd, 8)  # type: ignore[arg-type]
        pid = uuid.uuid4().hex[:26]
        job = Job(service="replicate", id=pid, model=model, kind=kind,
                  fp=fingerprint(model, inputs), prompt=str(inputs.get("prompt", "")),
                  submitted=asyncio.get_running_loop().time(),
                  latency=self.rng.uniform(*self.latency), units=units, unit=unit, usd=usd)
        self.ledger.jobs.append(job)
        self.by_id[pid] = job
        pred = load("replicate_prediction.json", id=pid, model=model, base=self.url + "/v1",
                    status="starting")
        pred["input"] = inputs
        self.predictions[pid] = {"pred": pred, "kind": kind, "n": int(units) if kind == "image"
                                 else 1, "polls": 0, "at": job.submitted}
        return web.json_response(pred, status=201)

    async def list(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        results = [self._state(pid) for pid in reversed(self.predictions)]
        return web.json_response({"previous": None, "next": None, "results": results})

    async def get(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        pid = request.match_info["id"]
        if pid not in self.predictions:
            return web.json_response({"detail": "Not found."}, status=404)
        self.by_id[pid].polls += 1
        pred = self._state(pid)
        if pred["status"] == "succeeded":
            self.by_id[pid].fetched = True
        return web.json_response(pred)

    async def cancel(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        pid = request.match_info["id"]
        if pid not in self.predictions:
            return web.json_response({"detail": "Not found."}, status=404)
        pred = self._state(pid)
        if pred["status"] in ("starting", "processing"):
            job = self.by_id[pid]
            job.cancel_requested = job.cancelled_in_queue = True  # nothing made: not billed
            self.predictions[pid]["pred"]["status"] = "canceled"
            pred = dict(self.predictions[pid]["pred"])
        return web.json_response(pred)
