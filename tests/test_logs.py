"""No token or key in any library's log line."""

from __future__ import annotations

import logging

import pytest

from pipeline.logs import setup_logging

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_library_log_lines_are_redacted_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG", secrets=["sk-live-abcdef123456", TOKEN])
    try:
        # python-telegram-bot at DEBUG names the Bot API URL, token and all
        logging.getLogger("telegram.ext.ExtBot").debug(
            "Calling Bot API endpoint `getMe` with parameters `{}` at %s",
            f"https://api.telegram.org/bot{TOKEN}/getMe")
        logging.getLogger("httpx").warning("HTTP Request: POST https://api.telegram.org/bot"
                                           "987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/x")
        logging.getLogger("aiohttp.client").info("headers {'Authorization': 'Bot abc.def-ghi'}")
        logging.getLogger("openai").info("key sk-live-abcdef123456 in use",
                                         extra={"url": "redis://:hunter22@host:6379/0"})
        try:
            raise RuntimeError(f"cannot reach https://queue.fal.run/x?key=s3cr3tvalue {TOKEN}")
        except RuntimeError:
            logging.getLogger("discord.http").exception("request failed")
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    for secret in (TOKEN, "987654321:ZZH", "abc.def-ghi", "sk-live-abcdef123456", "hunter22",
                   "s3cr3tvalue"):
        assert secret not in err
    assert "getMe" in err and "/bot***/" in err and "RuntimeError" in err
