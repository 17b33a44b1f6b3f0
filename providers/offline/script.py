"""Offline script writer: a deterministic story spine woven from the idea's own words.

No model and no NLP package: a small English heuristic finds the protagonist and other noun
phrases, the action and the places, then fills the story-spine beats (once upon a time, every
day, until one day, because of that, until finally, ever since) for the requested number of
scenes. Ideas in other scripts (Cyrillic, CJK, Arabic, Hebrew, emoji) are never translated: their
narration is built from the idea's own clauses. The same request always gives the same script.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal, Self

from providers.base import CharacterSpec, SceneSpec, Script, ScriptRequest, Usage
from providers.config import ProviderSettings
from providers.offline import stable_hash
from providers.offline.lexicon import (
    ADJECTIVES,
    ADVERBS,
    ANIMAL_LOOKS,
    ANIMALS,
    AUXILIARIES,
    COLOURS,
    CONJUNCTIONS,
    DETERMINERS,
    EMOJI_PLACES,
    FALLBACK_COLOURS,
    FEATURES,
    GARMENTS,
    HAIR_COLOURS,
    IMPLIED_PLACE,
    IRREGULAR_PAST,
    KIND_STEMS,
    NON_HUMAN,
    NOT_ANYONE,
    NUMBERS,
    OLD_ROLES,
    PEOPLE,
    PERSON_NAME_WORDS,
    PERSON_SUFFIXES,
    PLACE_NAMES,
    PLACE_PREPOSITION,
    PLACE_STEMS,
    PLACE_WORDS,
    PREDICATE_ADJECTIVES,
    PREPOSITIONS,
    PRONOUNS,
    REGULAR_VERBS,
    ROLES,
    TIME_STEMS,
    TIME_WORDS,
    WEATHER,
)

TimeOfDay = Literal["dawn", "day", "dusk", "night"]
Framing = Literal["wide", "medium", "close"]

WORDS_PER_SECOND = 2.6
PAD_S = 1.0
MIN_S, MAX_S = 2.0, 20.0
MAX_CHARACTERS = 4

WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’-]*|[.,;:!?]")
CLAUSE_SPLIT = re.compile(r"[.,;:!?…。，、！？；：،؛؟\n]+")
SENTENCE_END = frozenset(".!?;")
LOCATIVE = frozenset(
    ["in", "on", "at", "inside", "under", "near", "by", "aboard", "beside", "within", "into"]
)


# --------------------------------------------------------------------------- verbs


def _verb_base(word: str) -> str | None:
    """The base form of a verb-like word from the lexicon, else None."""
    w = word.lower()
    if w in REGULAR_VERBS:
        return w
    for past_base, past in IRREGULAR_PAST.items():
        if w == past:
            return past_base
    candidates: list[str] = []
    if w.endswith("ies"):
        candidates.append(w[:-3] + "y")
    if w.endswith("es"):
        candidates.append(w[:-2])
    if w.endswith("s"):
        candidates.append(w[:-1])
    if w.endswith("ied"):
        candidates.append(w[:-3] + "y")
    if w.endswith("ed"):
        candidates += [w[:-2], w[:-1], w[:-3]]
    if w.endswith("ing"):
        candidates += [w[:-3], w[:-3] + "e", w[:-4]]
    for c in candidates:
        if c in REGULAR_VERBS:
            return c
    return None


def _past(word: str) -> str:
    """Past tense of a present-tense verb form; words already past stay."""
    w = word.lower()
    if w in AUXILIARIES:
        return AUXILIARIES[w]
    base = _verb_base(w)
    if base is None:
        if w.endswith("ed"):
            return w
        if w.endswith("ies"):
            return w[:-3] + "ied"
        if w.endswith("s") and not w.endswith("ss"):
            base = w[:-2] if w.endswith(("ches", "shes", "xes", "sses")) else w[:-1]
        else:
            return w
    if w.endswith("ing"):
        return w
    if w == IRREGULAR_PAST.get(base) or (w.endswith("ed") and w != base):
        return w
    if base in IRREGULAR_PAST:
        return IRREGULAR_PAST[base]
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        return base[:-1] + "ied"
    return base + "ed"


# --------------------------------------------------------------------------- parsing


@dataclass
class Phrase:
    det: str
    words: list[str]
    proper: str = ""
    outfit: str = ""
    start: int = 0
    end: int = 0

    @property
    def head(self) -> str:
        return self.words[-1].lower() if self.words else self.proper.lower()

    @property
    def adjectives(self) -> list[str]:
        return [w.lower() for w in self.words[:-1] if _is_adjective(w)]

    @property
    def nouns(self) -> list[str]:
        return [w.lower() for w in self.words if not _is_adjective(w) or w is self.words[-1]]

    @property
    def plural(self) -> bool:
        return self.det.lower() in NUMBERS or self.det.lower() in {"these", "those", "some"}


@dataclass
class Idea:
    text: str
    subject: Phrase
    action: str  # past-tense verb phrase, may be ""
    others: list[Phrase] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    joint: bool = False  # "a fox and an owl explore ...": the first companion shares the action
    weather: str = ""  # "storm", "rain", "fog", "snow", "wind"
    when: TimeOfDay | None = None  # the time of day the idea names
    nobody: bool = False  # the idea names no one ("The end of time"): a wanderer tells it


def _is_adjective(word: str) -> bool:
    w = word.lower()
    return (
        w in ADJECTIVES
        or w in COLOURS
        or (
            w.endswith(("ful", "ous", "less", "ish", "ive", "y", "ed", "ing"))
            and w not in PEOPLE
            and w not in ANIMALS
            and w not in PLACE_WORDS
        )
    )


def _is_function(word: str) -> bool:
    w = word.lower()
    return (
        w in DETERMINERS
        or w in PREPOSITIONS
        or w in CONJUNCTIONS
        or w in PRONOUNS
        or w in AUXILIARIES
        or w in ADVERBS
        or not w[:1].isalpha()
    )


def _is_animate(p: Phrase) -> bool:
    h = p.head
    if p.proper and (p.proper in PLACE_NAMES or p.proper.lower() in NOT_ANYONE):
        return False
    if not p.proper and h in NOT_ANYONE:
        return False
    singular = h[:-1] if h.endswith("s") and h[:-1] in PEOPLE | ANIMALS else h
    if p.proper or singular in PEOPLE or singular in ANIMALS or h in PEOPLE:
        return True
    return h.endswith(PERSON_SUFFIXES) and h not in PLACE_WORDS and len(h) > 4


def _noun_phrases(tokens: list[str]) -> list[Phrase]:
    """Determiner-led phrases ("a lighthouse keeper", "two stranded whales") and proper names."""
    out: list[Phrase] = []
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        low = tok.lower()
        starts_np = (low in DETERMINERS and low != "one") or (
            low == "one" and i + 1 < n and tokens[i + 1].lower() not in {"day", "night", "morning"}
        )
        at_sentence_start = i == 0 or tokens[i - 1] in SENTENCE_END
        nxt0 = tokens[i + 1] if i + 1 < n else "."
        proper = (
            tok[:1].isupper()
            and not _is_function(tok)
            and _verb_base(tok) is None
            and (
                not at_sentence_start
                or (
                    low not in ADJECTIVES
                    and (
                        nxt0 == ","
                        or _verb_base(nxt0) is not None
                        or nxt0[:1].isupper()
                        or low in PEOPLE
                        or any(t == tok for t in tokens[i + 1 :])
                    )
                )
            )
        )
        if starts_np:
            words: list[str] = []
            j = i + 1
            while j < n and len(words) < 4:
                w = tokens[j]
                wl = w.lower()
                if (
                    _is_function(w)
                    or (w[:1].isupper() and words)
                    or wl in PREDICATE_ADJECTIVES
                    or (words and wl in {"named", "called"})
                ):
                    break
                nxt = tokens[j + 1].lower() if j + 1 < n else "."
                nxt_is_boundary = (
                    nxt in DETERMINERS
                    or nxt in PRONOUNS
                    or nxt in PREPOSITIONS
                    or not nxt[:1].isalpha()
                )
                base = _verb_base(wl)
                participle = (
                    wl.endswith(("ed", "ing"))
                    and nxt not in DETERMINERS
                    and not nxt_is_boundary
                    and _verb_base(nxt) is None
                )
                if words and base is not None and wl not in ADJECTIVES and not participle:
                    break
                if (
                    words
                    and base is None
                    and wl.endswith("s")
                    and not wl.endswith(("ss", "us", "is"))
                    and (nxt in DETERMINERS or nxt in PRONOUNS)
                ):
                    break
                if (
                    not words
                    and base is not None
                    and not wl.endswith(("ed", "ing"))
                    and (wl not in ADJECTIVES)
                ):
                    break
                words.append(w)
                j += 1
            if words:
                p = Phrase(tok, words, start=i, end=j)
                if (
                    j + 1 < n
                    and tokens[j].lower() in {"named", "called"}
                    and tokens[j + 1][:1].isupper()
                ):
                    p.proper = tokens[j + 1]
                    j += 2
                    p.end = j
                if j + 1 < n and tokens[j].lower() in {"in", "wearing"}:
                    k = j + 1
                    if tokens[k].lower() in DETERMINERS:
                        k += 1
                    look: list[str] = []
                    while k < n and len(look) < 3 and not _is_function(tokens[k]):
                        look.append(tokens[k].lower())
                        if tokens[k].lower() in GARMENTS:
                            p.outfit = "a " + " ".join(look)
                            break
                        k += 1
                out.append(p)
                i = j
                continue
        elif proper:
            words = [tok]
            j = i + 1
            while j < n and tokens[j][:1].isupper() and not _is_function(tokens[j]):
                words.append(tokens[j])
                j += 1
            name = " ".join(words)
            known_place = any(w in PLACE_NAMES for w in words)
            nobody = all(w.lower() in NOT_ANYONE for w in words)
            if not (len(words) == 1 and at_sentence_start and words[0].lower() in PLACE_WORDS) and (
                not known_place and not nobody
            ):
                out.append(Phrase("", [], proper=name, start=i, end=j))
            i = j
            continue
        i += 1
    return out


def _subject_and_action(
    tokens: list[str], phrases: list[Phrase]
) -> tuple[Phrase, Phrase | None, str]:
    first = phrases[0] if phrases else None
    if first is not None and first.start <= 1:
        subject = first
        rest = tokens[first.end :]
        # Apposition: "Mila, a brave little girl, sails ..." describes Mila.
        follow = next((p for p in phrases if p.start == first.end + 1), None)
        if first.proper and rest[:1] == [","] and follow is not None and follow.det:
            subject = Phrase(
                follow.det,
                follow.words,
                proper=first.proper,
                outfit=follow.outfit,
                start=0,
                end=follow.end,
            )
            rest = tokens[follow.end :]
            if rest[:1] == [","]:
                rest = rest[1:]
    else:
        # No determiner at the start ("Grandma teaches her cat"): words before the first verb.
        words: list[str] = []
        k = 0
        while k < len(tokens) and len(words) < 3:
            t = tokens[k]
            if not t[:1].isalpha() or (words and (_verb_base(t) or _is_function(t))):
                break
            if not _is_function(t):
                words.append(t)
            k += 1
        if not words:
            words = [t for t in tokens if t[:1].isalpha()][:2] or ["wanderer"]
        subject = Phrase("the", [w.lower() for w in words], start=0, end=k)
        if len(words) == 1 and words[0][:1].isupper() and words[0].lower() not in PEOPLE:
            subject = Phrase("", [], proper=words[0], start=0, end=k)
        rest = tokens[k:]
    co_subject: Phrase | None = None
    if rest[:1] and rest[0].lower() == "and":
        at = len(tokens) - len(rest) + 1
        co_subject = next((p for p in phrases if p.start == at), None)
        if co_subject is not None:
            rest = tokens[co_subject.end :]
    # Skip a relative pronoun: "a robot who wants to paint".
    while rest and rest[0].lower() in {"who", "that", "which", ","}:
        rest = rest[1:]
    action_words: list[str] = []
    convert_next = True
    for t in rest:
        if t in SENTENCE_END:
            break
        if t == ",":
            if len(action_words) >= 6:
                break
            action_words.append(",")
            continue
        low = t.lower()
        if convert_next and (low in PREDICATE_ADJECTIVES or low in ADJECTIVES):
            plural = subject.plural or co_subject is not None
            action_words += ["were" if plural else "was", low]
            convert_next = False
        elif convert_next and (low in AUXILIARIES or _verb_base(low) or low.endswith("s")):
            action_words.append(_past(low) if not t[:1].isupper() else t)
            convert_next = False
        elif low in AUXILIARIES and low in {"is", "are", "has", "have", "does", "do"}:
            action_words.append(AUXILIARIES[low])
        else:
            action_words.append(t if t[:1].isupper() and t.lower() not in DETERMINERS else low)
            convert_next = False
        if low in {"and", "then", "but"}:
            convert_next = True
        if len(action_words) >= 14:
            break
    action = " ".join(action_words).replace(" ,", ",").strip(" ,")
    return subject, co_subject, action


def parse_idea(idea: str) -> Idea:
    tokens = WORD_RE.findall(idea)
    phrases = _noun_phrases(tokens)
    subject, co_subject, action = _subject_and_action(tokens, phrases)
    others: list[Phrase] = [co_subject] if co_subject is not None else []
    seen = {_ref(subject)}
    for p in phrases:
        inside_subject = p.start <= subject.end and p.end <= subject.end + 1
        if inside_subject or not _is_animate(p) or p.head in PLACE_WORDS:
            continue
        if p is co_subject:
            continue
        if _ref(p) in seen or (subject.proper and p.proper == subject.proper):
            continue
        seen.add(_ref(p))
        others.append(p)
    lowered = [t.lower() for t in tokens]
    found: list[tuple[bool, int, str]] = []  # (after "in"/"on"/"at", position, place)
    for idx, w in enumerate(lowered):
        place = PLACE_NAMES.get(tokens[idx]) or PLACE_WORDS.get(w)
        if not place or (w == subject.head and not subject.proper):
            continue
        nxt = lowered[idx + 1] if idx + 1 < len(lowered) else ""
        if nxt in PLACE_WORDS and tokens[idx] not in PLACE_NAMES:
            continue  # "a castle kitchen" happens in the kitchen
        # "the frozen forest": keep one adjective before the place word.
        prev = lowered[idx - 1] if idx else ""
        if prev and _is_adjective(prev) and not _is_function(prev) and place.startswith("the "):
            place = f"the {prev} {place[4:]}"
        located = any(b in LOCATIVE for b in lowered[max(0, idx - 3) : idx])
        found.append((located, idx, place))
    places: list[str] = []
    for _, _, place in sorted(found, key=lambda f: (not f[0], f[1])):
        if place not in places:
            places.append(place)
    for p in [subject, *others]:
        implied = IMPLIED_PLACE.get(p.head) or IMPLIED_PLACE.get(p.head.rstrip("s"))
        if implied and not any(implied.split()[-1] in pl for pl in places):
            places.append(implied)
    weather = next((WEATHER[w] for w in lowered if w in WEATHER), "")
    when = next((TIME_WORDS[w] for w in lowered if w in TIME_WORDS), None)
    nobody = not _is_animate(subject) and (
        subject.head in NOT_ANYONE or any(n in NOT_ANYONE for n in subject.nouns)
    )
    if nobody:
        subject = Phrase("a", ["wanderer"])
    joint = co_subject is not None
    return Idea(idea, subject, "" if nobody else action, others[: MAX_CHARACTERS - 1], places,
                joint, weather, when, nobody)


# --------------------------------------------------------------------------- characters


def _ref(p: Phrase, intro: bool = False) -> str:
    """How narration names a character: "the lighthouse keeper", or "a stranded whale" the
    first time."""
    if p.proper:
        if intro and p.words:
            return f"{p.proper}, {_article(' '.join(w.lower() for w in p.words))}"
        return p.proper
    words = [w.lower() for w in p.words]
    if not intro:
        nouns = [w for w in words if not _is_adjective(w)] or words[-1:]
        words = nouns
    if p.plural:
        return (p.det.lower() + " " if intro else "the ") + " ".join(words)
    return _article(" ".join(words)) if intro else "the " + " ".join(words)


def _article(text: str) -> str:
    return ("an " if text[:1].lower() in "aeiou" else "a ") + text


def _name(p: Phrase) -> str:
    if p.proper:
        return p.proper[:80]
    nouns = [w for w in p.words if not _is_adjective(w.lower())] or p.words[-1:]
    return " ".join(w[:1].upper() + w[1:].lower() for w in nouns)[:80]


def _describe(p: Phrase, idea_text: str) -> str:
    rng = random.Random(stable_hash(_name(p) + "|" + idea_text.lower()))
    adjs = p.adjectives
    colours = [a for a in adjs if a in COLOURS]
    plain = [a for a in adjs if a not in COLOURS]
    noun = " ".join(w.lower() for w in p.words if w.lower() not in adjs) or p.proper.lower()
    named_role = p.proper.lower() in PEOPLE or p.proper.lower() in ROLES
    head = p.head.rstrip("s") if p.head.rstrip("s") in ANIMALS else p.head
    old = any(a in {"old", "elderly", "aged", "weathered", "retired", "ancient"} for a in adjs)
    weathered = old
    old = old or p.head in OLD_ROLES
    young = any(a in {"young", "little", "tiny", "baby"} for a in adjs) or head in {
        "girl",
        "boy",
        "kid",
        "kids",
        "child",
        "children",
    }
    parts: list[str] = []
    if head in ANIMALS or p.head in ANIMALS:
        look = ANIMAL_LOOKS.get(head, f"{rng.choice(FALLBACK_COLOURS)} {head} with bright eyes")
        if colours:
            look = " ".join([colours[0], *look.split()[1:]])
        prefix = " ".join(plain)
        parts.append((prefix + " " + look).strip())
        if p.proper:
            parts.append(f"called {p.proper}")
        return ", ".join(parts)[:600]
    role = next((ROLES[w] for w in [p.head, *reversed(p.nouns)] if w in ROLES), None)
    if head in PEOPLE or _is_animate(p) or role:
        lead = " ".join(
            [*(["weathered"] if weathered and "weathered" not in plain else []), *plain, noun]
        ).strip()
        if p.proper and not p.words and not named_role:
            lead = "storybook hero"
        outfit = p.outfit or (role[0] if role else "")
        if not outfit:
            colour = colours[0] if colours else rng.choice(FALLBACK_COLOURS)
            garment = rng.choice(["raincoat", "coat", "jumper", "jacket", "cloak"])
            outfit = _article(f"{colour} {garment}")
        elif colours and role:
            outfit = f"{outfit}, with {colours[0]} accents"
        parts.append(f"{lead} in {outfit}")
        if p.head in NON_HUMAN:
            parts.append(rng.choice(["a soft glow about it", "small round eyes", "a dented side"]))
        elif p.head in {"grandma", "grandmother"}:
            parts.append("rosy cheeks and half-moon glasses")
        elif old:
            parts.append("grey hair and a grey beard" if rng.random() < 0.5 else "silver hair")
        elif young:
            parts.append(f"small and round-faced, {rng.choice(HAIR_COLOURS)} hair")
        else:
            parts.append(f"{rng.choice(HAIR_COLOURS)} hair")
        if p.head not in NON_HUMAN:
            parts.append(rng.choice(FEATURES))
        if p.proper and not named_role:
            parts.insert(0, p.proper)
        return ", ".join(parts)[:600]
    colour = colours[0] if colours else rng.choice(FALLBACK_COLOURS)
    lead = " ".join([*plain, colour, noun]).strip()
    return f"{lead} with small bright eyes and a friendly face"[:600]


# --------------------------------------------------------------------------- spine


def _beats(n: int) -> list[str]:
    if n == 3:
        return ["once", "oneday", "since"]
    if n == 4:
        return ["once", "oneday", "finally", "since"]
    return ["once", "every", "oneday", *(["because"] * (n - 5)), "finally", "since"]


def _time_arc(n: int) -> list[TimeOfDay]:
    out: list[TimeOfDay] = []
    for i in range(n):
        f = i / (n - 1)
        out.append("dawn" if f < 0.12 else "day" if f < 0.56 else "dusk" if f < 0.8 else "night")
    return out


def _framings(n: int, rng: random.Random) -> list[Framing]:
    cycle: list[Framing] = ["medium", "close", "wide", "medium", "close"]
    offset = rng.randrange(len(cycle))
    out: list[Framing] = ["wide"]
    for i in range(1, n - 1):
        out.append(cycle[(i + offset) % len(cycle)])
    out.append("wide")
    for i in range(1, n):
        if out[i] == out[i - 1] and i < n - 1:
            out[i] = "close" if out[i] != "close" else "medium"
    return out


def _words(text: str) -> int:
    return len(text.split())


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = text.replace(" ,", ",")
    text = text[:1].upper() + text[1:]
    return text if text[-1:] in ".!?" else text + "."


@dataclass
class _Cast:
    s: str  # "the lighthouse keeper"
    sa: str  # "a lighthouse keeper" (intro)
    o: str  # companion ("the whale") or a thing from the idea, or ""
    both: str  # "the lighthouse keeper and the whale" or just s
    place: str
    place2: str
    action: str
    routine: str
    thing: str
    plural: bool = False
    joint: bool = False

    @property
    def has(self) -> str:
        return "have" if self.plural or self.o else "has"

    @property
    def at(self) -> str:
        return _at(self.place)

    @property
    def at2(self) -> str:
        return _at(self.place2)


def _at(place: str) -> str:
    """ "by the sea", "in the forest", "at the lighthouse", "in space"."""
    key = place.split()[-1] if place else ""
    prep = PLACE_PREPOSITION.get(key, "in")
    return f"{prep} {place}"


def _because_lines(c: _Cast, tod: str) -> list[str]:
    sky = {"dawn": "pale dawn", "day": "bright", "dusk": "amber dusk", "night": "starlit"}[tod]
    lines = [
        f"Because of that, {c.both} began to spend every day together {c.at2}."
        if c.o
        else f"Because of that, {c.s} began to spend every day {c.at2}, searching.",
        f"Because of that, {c.s} learned secrets about {c.o or c.place2} that nobody else knew.",
        f"Because of that, a storm rolled in over {c.place2}, and {c.both} had to hold on.",
        f"Because of that, {c.s} made a small, brave plan under the {sky} sky.",
        f"Because of that, word spread beyond {c.place}, and strangers came to see {c.both}.",
        f"Because of that, {c.s} almost gave up, but {c.o or 'a stubborn hope'} would not let go.",
        f"Because of that, {c.both} set out across {c.place2} to find what was missing.",
        f"Because of that, {c.s} saw {c.place} with new eyes, every corner of it.",
        f"Because of that, old fears faded, and {c.both} laughed for the first time in years.",
    ]
    return lines


def _line(beat: str, c: _Cast, k: int, order: list[int], tod: str) -> str:
    if beat == "once":
        return f"Once upon a time, {c.at}, there lived {c.sa}."
    if beat == "every":
        return f"Every day, {c.s} {c.routine}, and every day was much the same."
    if beat == "oneday":
        if c.action:
            return f"Until one day, {c.both if c.joint else c.s} {c.action}."
        return f"Until one day, something unexpected arrived {c.at2}, and {c.s} noticed."
    if beat == "because":
        lines = _because_lines(c, tod)
        return lines[order[k % len(order)] % len(lines)]
    if beat == "finally":
        if c.o:
            return f"Until finally, {c.both} stood together {c.at2} as the light changed."
        return f"Until finally, {c.s} stood {c.at2} as the light changed, and it all made sense."
    return (
        f"Ever since then, {c.both} {c.has} kept that day close, "
        f"like a light {c.at2} that never goes out."
    )


def _fit(line: str, short: _Cast, c: _Cast, beat: str, k: int, order: list[int], tod: str) -> str:
    """Keep a line within 8..25 words: fall back to short names, then trim the action."""
    if _words(line) > 25:
        line = _line(beat, short, k, order, tod)
    if _words(line) > 32:
        line = " ".join(line.rstrip(".").split()[:32])
    if _words(line) < 8:
        line = line.rstrip(".") + f", {c.at}, under a wide sky"
    return _whole(_sentence(line)[:600])


DANGLING = DETERMINERS | PREPOSITIONS | CONJUNCTIONS | {"named", "called", "who", "to"}


def _whole(line: str) -> str:
    """A sentence never ends on a word that needs another ("before the.", "named.")."""
    words = line.rstrip(".!?").split()
    while len(words) > 3 and (
        words[-1].lower().strip(",;:") in DANGLING or words[-1].endswith((",", ";", ":"))
    ):
        words.pop()
    return _sentence(" ".join(words).rstrip(",;:"))


def _singular(word: str) -> str:
    if word.endswith(("xes", "ches", "shes", "sses")):
        return word[:-2]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _mentions(line: str, p: Phrase) -> bool:
    words = set(re.findall(r"[a-z']+", line.lower()))
    if p.proper:
        return p.proper.lower().split()[0] in words
    return p.head in words or _singular(p.head) in words


MARKUP_RE = re.compile(r"<([A-Za-z][A-Za-z0-9]*)\b[^<>]*>([^<>]*)</\1\s*>")


def _plain(idea: str) -> tuple[str, dict[str, str]]:
    """The idea with markup replaced by its text for parsing, and text -> literal markup, so
    "<b>bold</b>" is written back as typed, never read as the words "b bold b"."""
    literal: dict[str, str] = {}

    def keep(m: re.Match[str]) -> str:
        inner = m.group(2).strip()
        if inner:
            literal.setdefault(inner, m.group(0))
        return inner

    return MARKUP_RE.sub(keep, idea), literal


def _restore(line: str, literal: dict[str, str]) -> str:
    for inner, markup in literal.items():
        pattern = rf"(?<![<\w/]){re.escape(inner)}(?![\w>])"
        line = re.sub(pattern, markup.replace("\\", "\\\\"), line, count=1,
                      flags=re.IGNORECASE)
    return line


def _write_english(
    request: ScriptRequest, idea: Idea, rng: random.Random, literal: dict[str, str] | None = None
) -> Script:
    literal = literal or {}
    n = request.scenes
    # "Two rival bakers" are two characters, "Baker 1" and "Baker 2", told of together.
    count = min(NUMBERS.get(idea.subject.det.lower(), 1), MAX_CHARACTERS)
    group = [idea.subject] * count if count > 1 and not idea.subject.proper else [idea.subject]
    cast = [*group, *idea.others][:MAX_CHARACTERS]
    names: list[str] = []
    for k, p in enumerate(cast):
        name = f"{_singular(p.head).title()} {k + 1}" if len(group) > 1 and k < len(group) else (
            _name(p) or "Hero"
        )
        while name in names:
            name = f"{name} {len(names) + 1}"
        names.append(name)
    characters = [
        CharacterSpec(name=nm, description=_describe(p, idea.text) or nm)
        for nm, p in zip(names, cast, strict=True)
    ]
    lead = names[: len(group)]
    others = names[len(group) :]
    companion = idea.others[0] if idea.others and others else None
    places = idea.places or ["home"]
    place = places[0]
    place2 = places[1] if len(places) > 1 else place
    s = _ref(idea.subject)
    role = next(
        (ROLES[w][1] for w in [idea.subject.head, *idea.subject.nouns] if w in ROLES),
        None,
    )
    routine = role or rng.choice(
        [
            f"wandered {_at(place)} from morning to night",
            f"looked out across {place}, waiting for something to change",
            f"walked the same quiet path {_at(place)}",
        ]
    )
    thing = ""
    o = _ref(companion) if companion else ""

    def cast_for(sref: str, oref: str, saref: str, act: str) -> _Cast:
        return _Cast(
            s=sref,
            sa=saref,
            o=oref,
            both=f"{sref} and {oref}" if oref else sref,
            place=place,
            place2=place2,
            action=act,
            routine=routine,
            thing=thing,
            plural=idea.subject.plural,
            joint=idea.joint,
        )

    full = cast_for(s, o, _ref(idea.subject, intro=True), idea.action)
    short_s = idea.subject.proper or "the " + idea.subject.head
    short_o = (companion.proper or "the " + companion.head) if companion else ""
    short_action = " ".join(idea.action.split()[:8])
    short = cast_for(short_s, short_o, _article(idea.subject.head), short_action)
    short.place = place.split(" of ")[0]
    short.place2 = place2.split(" of ")[0]

    beats = _beats(n)
    times = _time_arc(n) if idea.when is None else [idea.when] * n
    framings = _framings(n, rng)
    order = list(range(len(_because_lines(full, "day"))))
    rng.shuffle(order)
    scenes: list[SceneSpec] = []
    k = 0
    seen: set[str] = set()
    for i, beat in enumerate(beats):
        line = _fit(_line(beat, full, k, order, times[i]), short, full, beat, k, order, times[i])
        while line in seen:
            k += 1
            line = _fit(
                _line("because", full, k, order, times[i]),
                short,
                full,
                "because",
                k,
                order,
                times[i],
            )
        seen.add(line)
        if beat == "because":
            k += 1
        present = list(lead)
        if companion is not None and beat not in {"once", "every"}:
            present.append(others[0])
        if len(others) > 1 and beat in {"because", "finally"} and i % 2 == 0:
            present.extend(others[1:])
        # A character is in every scene whose narration names it ("and a whale sings").
        for nm, p in zip(names, cast, strict=True):
            if nm not in present and _mentions(line, p):
                present.append(nm)
        present = [nm for nm in names if nm in present]
        setting = place if beat in {"once", "every", "since"} or i % 2 == 0 else place2
        if idea.weather and idea.weather not in setting:
            setting = f"{setting} in the {idea.weather}"
        line = _restore(line, literal)
        refs = dict.fromkeys(_ref(cast[names.index(nm)]) for nm in present)
        who = " and ".join(refs)
        shot = _shot(framings[i], who, setting, times[i], beat, full)
        scenes.append(
            SceneSpec(
                shot=shot,
                narration=line,
                setting=setting[:200],
                time_of_day=times[i],
                framing=framings[i],
                characters=present,
                duration_s=_duration(line),
            )
        )
    first = names[0] if len(group) == 1 else " ".join(w.title() for w in idea.subject.words)
    title = _english_title(idea, [first, *others], companion)
    return Script(title=title, logline=_logline(idea.text), characters=characters, scenes=scenes)


def _shot(framing: Framing, who: str, setting: str, tod: str, beat: str, c: _Cast) -> str:
    light = {
        "dawn": "soft pink dawn light",
        "day": "clear daylight",
        "dusk": "warm amber dusk light",
        "night": "cool moonlight",
    }[tod]
    what = {
        "once": f"{who} in their everyday world",
        "every": f"{who} at the daily routine: {c.routine}",
        "oneday": f"{who}, the moment everything changes" + (f": {c.action}" if c.action else ""),
        "because": f"{who}, living with what happened",
        "finally": f"{who} at the turning point, faces lit by hope",
        "since": f"a calm closing image of {who}",
    }[beat]
    size = {"wide": "Wide shot", "medium": "Medium shot", "close": "Close-up"}[framing]
    return f"{size} {_at(setting)}, {light}: {what}."[:600]


def _english_title(idea: Idea, names: list[str], companion: Phrase | None) -> str:
    def t(p: Phrase, name: str) -> str:
        return name if p.proper else "The " + name

    if idea.nobody:  # no one to name: the idea's own words
        words = re.findall(r"[^\W\d_][\w'’-]*", idea.text)[:8]
        return " ".join(w[:1].upper() + w[1:] for w in words)[:120] or "A Story"
    title = t(idea.subject, names[0])
    named_place = next((w for w in (idea.places[0].split() if idea.places else [])
                        if w[:1].isupper()), "")
    if companion is not None:
        title += " and " + t(companion, names[1]).replace("The ", "the ", 1)
    elif named_place:
        title += " in " + named_place
    elif idea.places and idea.places[0].startswith("the "):
        said = {w.lower() for w in re.findall(r"[A-Za-z]+", idea.text)}
        if all(w in said for w in idea.places[0].split()[1:]):  # only the idea's own words
            title += " of " + idea.places[0].title().replace("The ", "the ", 1)
    return title[:120]


def _logline(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > 400:
        cut = text[:400]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind("。"))
        text = cut[: end + 1] if end > 40 else cut[:397].rstrip() + "…"
    last = text[-1:]
    return _sentence(text) if last.isascii() and last.isalnum() else text


def _duration(narration: str) -> float:
    wide = sum(1 for ch in narration if unicodedata.east_asian_width(ch) in "WF")
    words = len(narration.split()) + 0.6 * wide
    return round(min(MAX_S, max(MIN_S, words / WORDS_PER_SECOND + PAD_S)), 2)


# --------------------------------------------------------------------------- other scripts

def _unicode_words(grapheme: str) -> list[str]:
    return [w for ch in grapheme for w in unicodedata.name(ch, "").split()]


def _stem_in(stem: str, low: str) -> bool:
    """Whole-text match for CJK, Arabic, Hebrew (prefixed articles) and Indic scripts; a word
    prefix for Latin, Cyrillic and Greek."""
    script = unicodedata.name(stem[0], "").split(" ", 1)[0]
    if _is_wide(stem[0]) or script not in ("LATIN", "CYRILLIC", "GREEK"):
        return stem in low  # and Indic scripts, whose vowel signs split \w runs
    return any(w.startswith(stem) for w in re.findall(r"\w+", low))


def _kind_of(text: str) -> str:
    low = text.lower()
    found = [(len(stem), kind) for stem, kind in KIND_STEMS.items() if _stem_in(stem, low)]
    if found:  # the longest stem: 熊猫 (panda) is not 猫 (cat)
        return max(found, key=lambda f: f[0])[1]
    for g in _graphemes(text):
        if _is_symbolic(g):
            for w in _unicode_words(g):
                if w.lower() in ANIMALS or w in {"ROBOT", "GHOST", "ALIEN"}:
                    return w.lower()
    return ""


def _place_of(text: str) -> str:
    low = text.lower()
    for stem, place in PLACE_STEMS.items():
        if _stem_in(stem, low):
            return place
    for g in _graphemes(text):
        if _is_symbolic(g):
            words = _unicode_words(g)
            for key, place in EMOJI_PLACES.items():
                if key in words:
                    return place
    return ""


def _graphemes(text: str) -> list[str]:
    """Rough grapheme clusters: joins ZWJ sequences, variation selectors, skin tones, marks."""
    out: list[str] = []
    join_next = False
    for ch in text:
        cp = ord(ch)
        joiner = (
            cp in (0x200D, 0xFE0F, 0xFE0E, 0x20E3)
            or 0x1F3FB <= cp <= 0x1F3FF
            or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        )
        if out and (joiner or join_next):
            out[-1] += ch
        else:
            out.append(ch)
        join_next = cp == 0x200D
    return out


def _is_symbolic(ch: str) -> bool:
    return unicodedata.category(ch[0]) in ("So", "Sk", "Sm") or ord(ch[0]) >= 0x1F000


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch[0]) in "WF" and not _is_symbolic(ch)


def _units(text: str) -> list[str]:
    """Pieces of the idea, in its own script: clauses, words, then short character runs."""
    clauses = [c.strip() for c in CLAUSE_SPLIT.split(text) if c.strip()]
    return clauses or [text.strip()]


SENTENCE_RE = re.compile(r"[^.!?…。！？؟\n]+[.!?…。！？؟]*")
# Where a run of CJK text without spaces may be cut: after a particle or a function character.
CJK_BREAK_AFTER = frozenset("、，,がはをへでにとも的了在里着和与跟")


def _split_piece(piece: str) -> tuple[str, str] | None:
    """Cut one piece in two near its middle: at a comma, else a space, else after a particle
    (CJK), else between two graphemes. None when it cannot be cut."""
    for marks in (",،，、;；", " "):
        cuts = [i + 1 for i, ch in enumerate(piece[:-1]) if ch in marks and i > 0]
        if cuts:
            mid = len(piece) / 2
            at = min(cuts, key=lambda i: abs(i - mid))
            return piece[:at].strip(), piece[at:].strip()
    g = _graphemes(piece)
    if len(g) < 2:
        return None
    cuts = [i + 1 for i, ch in enumerate(g[:-2]) if ch in CJK_BREAK_AFTER and i > 0]
    mid = len(g) / 2
    at = min(cuts, key=lambda i: abs(i - mid)) if cuts else len(g) // 2
    if cuts and abs(at - mid) > len(g) / 3:
        at = len(g) // 2
    return "".join(g[:at]), "".join(g[at:])


def _size(piece: str) -> int:
    """How much there is to cut: words, or graphemes for text written without spaces."""
    words = piece.split()
    return len(words) if len(words) > 1 else len(_graphemes(piece)) // 2


def narration_pieces(text: str, scenes: int) -> list[str]:
    """The idea's own sentences in order, one scene each, never repeated. Sentences are cut (at
    commas, spaces, particles) towards ``scenes`` while both halves keep three words, and to
    reach the three scenes a script needs; more sentences than scenes are grouped."""
    pieces = [m.strip() for m in SENTENCE_RE.findall(text) if m.strip()] or [text.strip()]
    if all(_is_symbolic(g) or g.isspace() for g in _graphemes(text)):
        pieces = [g for g in _graphemes(text) if not g.isspace()] or [text.strip()]
    while len(pieces) < scenes:
        longest = max(range(len(pieces)), key=lambda i: _size(pieces[i]))
        if len(pieces) >= 3 and _size(pieces[longest]) < 6:
            break
        cut = _split_piece(pieces[longest])
        if cut is None or not all(any(ch.isalnum() or _is_symbolic(ch) for ch in c) for c in cut):
            break
        pieces[longest : longest + 1] = list(cut)
    marks = ["…", "!", "…!", "?!", "……", "!!"]
    base = pieces[-1]
    while len(pieces) < 3:  # a lone emoji or word: the same, said with more feeling
        pieces.append(f"{base} {marks[(len(pieces) - 1) % len(marks)]}")
    if len(pieces) > scenes:
        sizes = [len(pieces) // scenes + (1 if i < len(pieces) % scenes else 0)
                 for i in range(scenes)]
        grouped, at = [], 0
        for size in sizes:
            grouped.append(" ".join(pieces[at : at + size]))
            at += size
        pieces = grouped
    return [p[:600] for p in pieces]


def _place_in(text: str) -> str:
    """The most specific place word of an idea in another language (the longest stem that
    matches: 城堡 "castle" over 山 "mountain")."""
    low = text.lower()
    found = [
        (len(stem) - (3 if place == "the moon" else 0), place)  # the moon: only if nothing else
        for stem, place in PLACE_STEMS.items()
        if _stem_in(stem, low)
    ]
    return max(found)[1] if found else ""


def _time_in(text: str) -> TimeOfDay | None:
    low = text.lower()
    for stem, tod in TIME_STEMS.items():
        if _stem_in(stem, low):
            return tod
    return None


def _first_words(text: str, limit: int) -> str:
    words = text.split()
    if len(words) > 1:
        return " ".join(words[:limit])
    g = _graphemes(text.strip())
    return "".join(g[: limit * 2])


ARTICLES = frozenset(
    ["un", "una", "unos", "unas", "el", "la", "los", "las", "le", "les", "une", "des", "der",
     "die", "das", "den", "ein", "eine", "einen", "il", "lo", "gli", "uma", "um", "o", "a", "os",
     "as", "एक"]
)
CJK_CLASSIFIER = re.compile(r"^(?:一[只条个头位匹隻個條颗顆棵座])")
CJK_STOP = frozenset("在的和与跟了着是がはをにへでとのも")


def _title_other(text: str) -> str:
    """The idea's first sentence as the title, cut at a word (or after a particle) when long:
    never in the middle of one ("一只熊猫在竹林里学会了弹" is not a title)."""
    first = next((m.strip() for m in SENTENCE_RE.findall(text) if m.strip()), text.strip())
    first = first.rstrip(".!?…。！？؟ ")
    words = first.split()
    if len(words) > 1:
        return " ".join(words[:8])[:120]
    g = _graphemes(first)
    if len(g) <= 14:
        return first
    cut = max((i + 1 for i, ch in enumerate(g[:14]) if ch in CJK_STOP and i > 1), default=14)
    return "".join(g[:cut])


def _lead_name(part: str, limit: int = 2) -> str:
    """Who a clause in another language is about: its first words without an article, up to an
    animal word ("pequeño dragón", "ёжик"); in CJK the noun around a known kind (熊猫, 机器人),
    else the characters before the first particle."""
    part = part.strip(" ,.!?;:")
    if not part or not _is_wide(part[0]):
        words = [w.strip(",.!?;:") for w in part.split()]
        while len(words) > 1 and words[0].lower() in ARTICLES:
            words = words[1:]
        for k, w in enumerate(words[:3]):
            if _kind_of(w):
                return " ".join(words[: k + 1])
        return " ".join(words[:limit])
    window = "".join(_graphemes(CJK_CLASSIFIER.sub("", part))[:8])
    hits = sorted((window.find(st), st) for st in KIND_STEMS if _is_wide(st[0]) and st in window)
    if hits:
        at, stem = hits[0]
        end = at + len(stem)
        for pos, other in hits[1:]:
            if pos == end:
                end += len(other)
        start = max((i + 1 for i, ch in enumerate(window[:at]) if ch in CJK_STOP), default=0)
        return window[start:end]
    cut = next((i for i, ch in enumerate(window) if ch in CJK_STOP and i > 0), min(4, len(window)))
    return window[:cut]


def _write_other(request: ScriptRequest, rng: random.Random) -> Script:
    text = re.sub(r"\s+", " ", request.idea).strip() or "…"
    n = request.scenes
    clauses = _units(text)
    emoji = [g for g in _graphemes(text) if _is_symbolic(g) and not g.isspace()]
    letters = [ch for ch in text if ch.isalpha()]
    names: list[str] = []
    if not letters and emoji:
        alive = [
            g
            for g in emoji
            if _kind_of(g) or any(w in PERSON_NAME_WORDS for w in _unicode_words(g))
        ]
        names = list(dict.fromkeys(alive or emoji[:1]))
    else:
        first = clauses[0]
        parts = re.split(r"\s+(?:и|с|со|та|і|و|ו|y|et|und|e|ed|and)\s+|[和与跟과와]", first,
                         maxsplit=1)
        names.append(_lead_name(parts[0]))
        words = text.split()
        animal = next((w.strip(" ,.!?") for w in words if _kind_of(w)), "")
        if len(words) < 2:
            animal = ""
        if animal and animal not in names[0] and names[0] not in animal:
            names.append(animal)
        elif len(parts) > 1 and parts[1].strip():
            names.append(_lead_name(parts[1], 1))
    names = [nm.strip(" ,.!?。，")[:80] or "★" for nm in names][:MAX_CHARACTERS]
    names = list(dict.fromkeys(names))
    characters = []
    for nm in names:
        crng = random.Random(stable_hash(nm))
        kind = _kind_of(nm)
        uname = " ".join(_unicode_words(nm)).lower() if all(_is_symbolic(g) for g in nm) else ""
        if kind:
            desc = f"{nm}: a storybook {ANIMAL_LOOKS.get(kind, kind)}"
        else:
            colour = crng.choice(FALLBACK_COLOURS)
            who = f"storybook {uname}" if uname else "storybook character"
            desc = (
                f"{nm}: {who} in {_article(colour)} "
                f"{crng.choice(['coat', 'cloak', 'jacket'])}, "
                f"{crng.choice(HAIR_COLOURS)} hair, {crng.choice(FEATURES)}"
            )
        characters.append(CharacterSpec(name=nm, description=desc[:600]))
    narrations = narration_pieces(text, n)
    count = len(narrations)
    times = _time_arc(count)
    when = _time_in(text)
    if when is not None:  # the idea says when: "pendant la nuit"
        times = [when] * count
    framings = _framings(count, rng)
    overall = _place_in(text) or _place_of(text)
    scenes = []
    for i, line in enumerate(narrations):
        present = [names[0]] if i < 2 or len(names) == 1 else names[:2]
        present += [nm for nm in names if nm in line and nm not in present]
        setting = _place_in(line) or _place_of(line) or overall
        shot_size = {"wide": "Wide shot", "medium": "Medium shot", "close": "Close-up"}[framings[i]]
        where = f" {_at(setting)}" if setting else ""
        shot = f"{shot_size}{where}, {times[i]} light: {' and '.join(present)} — {line}"
        scenes.append(
            SceneSpec(
                shot=shot[:600],
                narration=line,
                setting=setting,
                time_of_day=times[i],
                framing=framings[i],
                characters=present,
                duration_s=_duration(line),
            )
        )
    title = _title_other(text) or names[0]
    return Script(title=title, logline=_logline(text), characters=characters, scenes=scenes)


def _is_english(request: ScriptRequest) -> bool:
    text = request.idea
    letters = [ch for ch in text if ch.isalpha()]
    if not letters or not request.language.lower().startswith("en"):
        return False
    ascii_share = sum(1 for ch in letters if ch.isascii()) / len(letters)
    words = [w.lower() for w in WORD_RE.findall(text) if w[:1].isalpha()]
    if ascii_share < 0.8 or not words:
        return False
    english = DETERMINERS | PREPOSITIONS | CONJUNCTIONS | PRONOUNS | set(AUXILIARIES)
    return len(words) <= 3 or any(w in english for w in words)


# --------------------------------------------------------------------------- provider


class StorySpineWriter:
    """Writes a script with no model: deterministic, instant, and always valid."""

    name = "offline"
    model = "story-spine"

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> Self:
        return cls()

    def compose(self, request: ScriptRequest) -> Script:
        rng = random.Random(stable_hash(f"{request.idea}|{request.scenes}|{request.style}"))
        if _is_english(request):
            plain, literal = _plain(request.idea)
            return _write_english(request, parse_idea(plain), rng, literal)
        return _write_other(request, rng)

    async def write(self, request: ScriptRequest) -> tuple[Script, Usage]:
        script = self.compose(request)
        return script, Usage(provider=self.name, model=self.model, units=1, unit="script")
