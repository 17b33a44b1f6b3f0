"""Logging with structured fields: ``log.info("msg", extra={"story_id": ...})`` prints them.

Every handler on the root logger carries a :class:`Redactor`, so no library's log line (httpx,
python-telegram-bot, discord.py, aiohttp, arq...) shows a token or key: the configured secrets are
replaced wherever they appear, and so are the shapes secrets take in URLs and headers (a Bot API
URL's ``/bot<token>/``, ``Authorization: Bearer …``, ``?key=…``, a password in a Redis URL).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

MASK = "***"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(/bot)\d{3,}:[A-Za-z0-9_-]{20,}"), r"\1" + MASK),  # Bot API URLs
    (re.compile(r"\b\d{6,}:[A-Za-z0-9_-]{30,}\b"), MASK),  # a bare Telegram token
    (re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?(?:bearer|bot|key|token|basic)\s+)"
                r"[^\s'\",}]+"), r"\1" + MASK),
    (re.compile(r"(?i)(\b(?:x-api-key|xi-api-key|api-key)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
     r"\1" + MASK),
    (re.compile(r"(?i)([?&](?:key|token|api_key|apikey|access_token|secret|sig)=)[^&\s'\"]+"),
     r"\1" + MASK),
    (re.compile(r"(?i)\b((?:redis|rediss|valkey|valkeys|https?)://[^:@/\s]*:)[^@/\s]+@"),
     r"\1" + MASK + "@"),
]


class Redactor(logging.Filter):
    """Removes secrets from a record's message, arguments, extra fields and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None  # the redacted text is what gets printed
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not fields:
            return base
        return base + " " + " ".join(f"{k}={v}" for k, v in sorted(fields.items()))


class OneLine(FieldsFormatter):
    """A record on one line: the exception's type and text, never its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            record.exc_info, record.exc_text = None, None
            record.msg = f"{record.getMessage()}: {type(err).__name__}: {err}"
            record.args = None
        elif record.exc_text:
            record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


def setup_logging(level: str = "INFO", secrets: Iterable[str] = (),
                  log_file: Path | None = None) -> None:
    """Log to stderr at ``level``. With ``log_file`` (the terminal commands, which show their
    own progress), the details go to that file and stderr shows only errors, one line each."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    redactor = Redactor(secrets)
    handlers: list[logging.Handler] = []
    if log_file is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FieldsFormatter(fmt))
        handlers.append(handler)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = RotatingFileHandler(log_file, maxBytes=5_000_000, backupCount=2,
                                      encoding="utf-8")
        to_file.setFormatter(FieldsFormatter(fmt))
        to_file.setLevel(level)
        handlers.append(to_file)
        terse = logging.StreamHandler(sys.stderr)
        terse.setFormatter(OneLine("storyloom: %(message)s"))
        terse.setLevel(logging.CRITICAL)
        handlers.append(terse)
    for h in handlers:
        h.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    # arq logs every job at INFO; keep the terminal for Storyloom's own progress.
    logging.getLogger("arq").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
