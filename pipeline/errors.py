"""Typed errors of the pipeline. Each carries a message fit to show a person."""

from __future__ import annotations


class StoryloomError(Exception):
    """Base of every error Storyloom raises on purpose."""


class SettingsError(StoryloomError):
    """A setting is unknown or has a bad value."""


class RedisUnavailable(StoryloomError):
    """The configured Redis (or the embedded Valkey) cannot be reached."""


class IllegalTransition(StoryloomError):
    """A story was asked to move to a status its current status does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a story cannot go from {current} to {target}")
        self.current = current
        self.target = target


class StoryNotFound(StoryloomError):
    def __init__(self, story_id: str) -> None:
        super().__init__(f"no story with id {story_id!r}")
        self.story_id = story_id


class CorruptStory(StoryloomError):
    """A stored story document does not validate against the model."""

    def __init__(self, story_id: str, reason: str) -> None:
        super().__init__(f"story {story_id} is damaged: {reason}")
        self.story_id = story_id
        self.reason = reason


class ConflictError(StoryloomError):
    """A compare-and-set update kept losing to concurrent writers."""


class BadIdea(StoryloomError):
    """The idea text cannot become a story (empty, too long, control characters only)."""


class BadRequest(StoryloomError):
    """A request names a scene, candidate or option that does not exist."""


class UsageError(StoryloomError):
    """A command-line argument cannot be used (a bad option, an unwritable output path)."""


class MediaNotFound(StoryloomError):
    pass


class BudgetExceeded(StoryloomError):
    """A step would spend more than the story's or the group's budget allows."""


class WorkLost(StoryloomError):
    """A step's job is gone: its worker stopped (killed) on every try, or the queue lost it."""

    def __init__(self, step: str, tries: int = 0) -> None:
        times = f" {tries} times" if tries > 1 else ""
        super().__init__(
            f"the worker doing the {step} step stopped{times} before it finished; "
            "retry the story to go on from there"
        )
        self.step = step


class Interrupted(StoryloomError):
    """The person stopped the command that was working on the story (Ctrl-C)."""

    def __init__(self) -> None:
        super().__init__("stopped with Ctrl-C before it finished")
