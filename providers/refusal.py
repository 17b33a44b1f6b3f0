"""Content-policy refusals: one retry with a gentler prompt, then a message a person can act on.

Used around a chain call by the pipeline::

    result = await retry_refused(
        lambda req: chain.run(lambda p: p.generate(req)), request, label="Scene 3"
    )

A refusal from one provider already lets the chain try the next one; only when the whole attempt
ends in a refusal is the prompt softened and tried once more. A second refusal raises
:class:`SceneRefused`, whose ``user_message`` names the scene and is safe to show in the chat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from providers.base import ContentRefused, ProviderError

log = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")

_GENTLER: list[tuple[str, str]] = [
    (r"\b(blood(y|ied)?|gore|gory|gruesome|grisly|mutilat\w*|dismember\w*)\b", ""),
    (r"\b(kill(s|ed|ing)?|murder(s|ed|ing)?|slaughter(s|ed|ing)?|stab(s|bed|bing)?)\b", "defeat"),
    (r"\b(corpses?|dead bod(y|ies)|carcass(es)?)\b", "fallen figure"),
    (r"\b(dead|dying)\b", "still"),
    (r"\b(guns?|rifles?|pistols?|firearms?)\b", "staff"),
    (r"\b(knife|knives|daggers?|swords?|blades?)\b", "walking stick"),
    (r"\b(naked|nude|topless|undressed)\b", "fully clothed"),
    (r"\b(sexy|seductive|sensual|erotic)\b", "elegant"),
    (r"\b(torture[sd]?|torturing|tortures)\b", "captivity"),
    (r"\b(drugs?|cocaine|heroin)\b", "potion"),
    (r"\b(terrifying|horrifying|violent|brutal)\b", "dramatic"),
]
_SUFFIX = "gentle, family-friendly storybook illustration, nothing graphic"


def soften_prompt(prompt: str) -> str:
    """The same scene with graphic words replaced and an explicit family-friendly framing."""
    text = prompt
    for pattern, replacement in _GENTLER:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    text = re.sub(r"\s{2,}", " ", text).strip(" ,.;")
    text = re.sub(r"\s+([,.;])", r"\1", text)
    if _SUFFIX not in text:
        text = f"{text}. {_SUFFIX}" if text else _SUFFIX
    return text


def soften_request(request: R) -> R:
    """A copy of an image, video or speech request with its prompt (or text) softened."""
    for name in ("prompt", "text"):
        value = getattr(request, name, None)
        if isinstance(value, str) and value:
            return request.model_copy(update={name: soften_prompt(value)})
    return request


def is_refusal(err: BaseException) -> bool:
    """True for a ContentRefused, or a failed chain in which a provider refused the content."""
    if isinstance(err, ContentRefused):
        return True
    errors = getattr(err, "errors", None)
    return isinstance(errors, list) and any(isinstance(e, ContentRefused) for e in errors)


class SceneRefused(ContentRefused):
    """Refused twice, the second time with a softened prompt. ``user_message`` is chat-safe."""

    def __init__(self, provider: str, label: str, reason: str) -> None:
        super().__init__(provider, f"{label} refused on content-policy grounds: {reason}")
        self.label = label
        self.user_message = (
            f"{label} was turned down by the image service's content rules, even after "
            "toning the description down. Try rewording that scene, or regenerate it."
        )


async def retry_refused(
    run: Callable[[R], Awaitable[T]], request: R, *, label: str
) -> T:
    """``await run(request)``; on a refusal, once more with :func:`soften_request`."""
    try:
        return await run(request)
    except ProviderError as err:
        if not is_refusal(err):
            raise
        log.info("content refused, retrying softened", extra={"scene": label, "reason": str(err)})
    softened = soften_request(request)
    try:
        return await run(softened)
    except ProviderError as err:
        if not is_refusal(err):
            raise
        raise SceneRefused(err.provider, label, err.message) from err
