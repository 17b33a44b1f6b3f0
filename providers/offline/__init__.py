"""The offline providers: every capability with no key, no network and no model download."""

from __future__ import annotations

import hashlib


def stable_hash(text: str) -> int:
    """A 64-bit number from text, the same in every process (unlike ``hash``): seeds looks."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
