"""Caption layout (pure) and rendering (Pillow, to transparent PNGs ffmpeg overlays).

Layout works on tokens: words separated by spaces, and single characters for scripts written
without spaces (Chinese, Japanese). Lines are wrapped by measured pixel width, a word wider than
a line is split between characters, and cues (a line or two on screen at once) follow the
narration's word timings. Right-to-left text is shaped by Pillow's raqm layout per word; the
order of words on a line follows a simplified bidi rule (runs of opposite direction reversed).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from pydantic import BaseModel

from pipeline.render.fonts import BOLD, Face, FontChain, default_chain, truetype
from providers.base import WordTiming

SIDE_MARGIN = 0.08  # of the width, each side
BOTTOM_RESERVED = 0.12  # of the height: chat apps put their controls there
REGION_TOP = 2 / 3  # captions live in the bottom third

RGBA = tuple[int, int, int, int]
_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？", "؟", "।", ":", ";")
_CLOSERS = frozenset("，。、！？：；）」』】〉》〕…・ー,.!?:;)%\"'”’")
_OPENERS = frozenset("（「『【〈《〔“‘(")


# --------------------------------------------------------------------------- geometry


class Box(BaseModel):
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height


def safe_area(width: int, height: int) -> Box:
    """Where captions may go: inside the side margins, in the bottom third, above the controls."""
    x = round(width * SIDE_MARGIN)
    top = round(height * REGION_TOP)
    bottom = round(height * (1 - BOTTOM_RESERVED))
    return Box(x=x, y=top, width=width - 2 * x, height=bottom - top)


def caption_px(width: int, height: int) -> int:
    """Caption font size: about 1/16 of the short side (45 px at 720p, 67 px at 1080p)."""
    return max(14, round(min(width, height) * 0.0625))


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    text: str
    space_before: bool


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF  # kana
        or 0x31F0 <= cp <= 0x31FF
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x3000 <= cp <= 0x303F  # CJK punctuation
        or 0xFF00 <= cp <= 0xFFEF  # full-width forms
        or 0x20000 <= cp <= 0x3FFFF
    )


def _clusters(text: str) -> list[str]:
    """Approximate grapheme clusters: a base character with its marks, joiners and selectors."""
    out: list[str] = []
    glue_next = False
    for ch in text:
        attached = unicodedata.category(ch) in ("Mn", "Mc", "Me") or (
            0xFE00 <= ord(ch) <= 0xFE0F or 0x1F3FB <= ord(ch) <= 0x1F3FF or ch == "\u200d"
        )
        if out and (attached or glue_next):
            out[-1] += ch
        else:
            out.append(ch)
        glue_next = ch == "\u200d"
    return out


def tokenize(text: str) -> list[Token]:
    """Words, with CJK split into single characters (closing punctuation kept with the
    character before it, opening punctuation with the one after)."""
    tokens: list[Token] = []
    for word in text.split():
        space = True
        buf = ""
        pending_open = ""
        for cl in _clusters(word):
            if _is_cjk(cl[0]) and cl not in _CLOSERS:
                if cl in _OPENERS:
                    if buf:
                        tokens.append(Token(buf, space))
                        space, buf = False, ""
                    pending_open += cl
                    continue
                if buf:
                    tokens.append(Token(buf, space))
                    space = False
                buf = pending_open + cl
                pending_open = ""
                tokens.append(Token(buf, space))
                space, buf = False, ""
            elif cl in _CLOSERS and not buf and tokens and not space:
                tokens[-1] = Token(tokens[-1].text + cl, tokens[-1].space_before)
            else:
                buf += pending_open + cl
                pending_open = ""
        if buf or pending_open:
            tokens.append(Token(buf + pending_open, space))
    return tokens


def join_tokens(tokens: Sequence[Token]) -> str:
    return "".join((" " if t.space_before and i else "") + t.text for i, t in enumerate(tokens))


def _direction(text: str) -> str | None:
    """'rtl', 'ltr', or None for text with no strong direction (digits, punctuation, emoji)."""
    for ch in text:
        bidi = unicodedata.bidirectional(ch)
        if bidi in ("R", "AL"):
            return "rtl"
        if bidi == "L":
            return "ltr"
    return None


def base_direction(text: str) -> str:
    return _direction(text) or "ltr"


# --------------------------------------------------------------------------- measuring


class TextStyle(BaseModel):
    px: int
    weight: int = BOLD
    fill: RGBA = (255, 255, 255, 255)
    stroke: RGBA = (0, 0, 0, 255)
    stroke_px: int = -1  # -1: about px/14
    shadow: RGBA = (0, 0, 0, 150)
    line_height: float = 1.32

    @property
    def stroke_width(self) -> int:
        return self.stroke_px if self.stroke_px >= 0 else max(1, round(self.px / 14))

    @property
    def line_px(self) -> int:
        return round(self.px * self.line_height)


@lru_cache(maxsize=16384)
def _run_width(text: str, face: Face, px: int, weight: int) -> float:
    direction = "rtl" if _direction(text) == "rtl" else "ltr"
    return float(truetype(face, px, weight).getlength(text, direction=direction))


def text_width(text: str, px: int, weight: int = BOLD, chain: FontChain | None = None) -> float:
    """Advance width of ``text`` in pixels, across the fallback faces."""
    chain = chain or default_chain()
    return sum(_run_width(run, face, px, weight) for run, face in chain.runs(text))


def _split_wide(token: Token, max_width: float, measure: Callable[[str], float]) -> list[Token]:
    pieces: list[Token] = []
    buf = ""
    for cl in _clusters(token.text):
        if buf and measure(buf + cl) > max_width:
            pieces.append(Token(buf, token.space_before if not pieces else False))
            buf = ""
        buf += cl
    if buf:
        pieces.append(Token(buf, token.space_before if not pieces else False))
    return pieces


def wrap_tokens(
    tokens: Sequence[Token], max_width: float, measure: Callable[[str], float]
) -> list[list[Token]]:
    """Greedy wrap by pixel width. A token wider than ``max_width`` is split between clusters."""
    space = measure(" ")
    lines: list[list[Token]] = []
    line: list[Token] = []
    width = 0.0
    for tok in tokens:
        tok_w = measure(tok.text)
        parts = [tok] if tok_w <= max_width else _split_wide(tok, max_width, measure)
        for part in parts:
            part_w = tok_w if part is tok else measure(part.text)
            gap = space if line and part.space_before else 0.0
            if line and width + gap + part_w > max_width:
                lines.append(line)
                line, width, gap = [], 0.0, 0.0
            line.append(part)
            width += gap + part_w
    if line:
        lines.append(line)
    return lines


def balanced_wrap(
    tokens: Sequence[Token], max_width: float, measure: Callable[[str], float]
) -> list[list[Token]]:
    """Wrap into as few lines as the greedy wrap needs, but as even as possible (no one-word
    widow under a full line)."""
    lines = wrap_tokens(tokens, max_width, measure)
    if len(lines) < 2:
        return lines
    widest = max((w for w in (measure(t.text) for t in tokens) if w <= max_width), default=0.0)
    # Never narrower than the widest word that fits a line: balancing must not split words.
    lo, hi = max(max_width / (len(lines) + 1), widest), max_width
    best = lines
    for _ in range(10):
        mid = (lo + hi) / 2
        trial = wrap_tokens(tokens, mid, measure)
        if len(trial) <= len(lines):
            best, hi = trial, mid
        else:
            lo = mid
    return best


def wrap_text(
    text: str, max_width: float, px: int, weight: int = BOLD, chain: FontChain | None = None
) -> list[str]:
    """``text`` wrapped to lines no wider than ``max_width`` pixels (drawable characters only)."""
    chain = chain or default_chain()
    text = chain.renderable(text)
    lines = wrap_tokens(tokenize(text), max_width, lambda s: text_width(s, px, weight, chain))
    return [join_tokens(line) for line in lines]


# --------------------------------------------------------------------------- cues


class Cue(BaseModel):
    """A caption on screen from ``start_s`` to ``end_s`` (seconds from the narration start)."""

    text: str
    lines: list[str]
    start_s: float
    end_s: float


def _weight(text: str) -> int:
    return max(1, sum(1 for ch in text if not ch.isspace()))


def time_tokens(
    tokens: Sequence[Token], words: Sequence[WordTiming], duration_s: float
) -> list[tuple[float, float]]:
    """Start and end of each token. One timing per token maps directly; otherwise (sentence
    timings, or a TTS that split words differently) tokens are placed by their character
    position through the timed text; with no timings they are spread over ``duration_s``."""
    timed = [w for w in words if w.text.strip()]
    if len(timed) == len(tokens):
        return [(w.start_s, max(w.start_s, w.end_s)) for w in timed]
    if not timed:
        timed = [WordTiming(text=join_tokens(tokens) or " ", start_s=0.0, end_s=max(duration_s, 0))]
    # Piecewise-linear map from the fraction of timed characters to time.
    knots_f: list[float] = [0.0]
    knots_t: list[float] = [timed[0].start_s]
    total = sum(_weight(w.text) for w in timed)
    acc = 0
    for w in timed:
        if w.start_s > knots_t[-1]:
            knots_f.append(acc / total)
            knots_t.append(w.start_s)
        acc += _weight(w.text)
        knots_f.append(acc / total)
        knots_t.append(max(w.end_s, knots_t[-1]))

    def at(f: float) -> float:
        for i in range(1, len(knots_f)):
            if f <= knots_f[i]:
                span = knots_f[i] - knots_f[i - 1]
                r = (f - knots_f[i - 1]) / span if span > 0 else 1.0
                return knots_t[i - 1] + r * (knots_t[i] - knots_t[i - 1])
        return knots_t[-1]

    weights = [_weight(t.text) for t in tokens]
    total_tokens = sum(weights) or 1
    out = []
    pos = 0
    eps = 1e-9
    for weight in weights:
        # A start at a word boundary belongs to the word after a pause, an end to the one before.
        out.append((at(pos / total_tokens + eps), at((pos + weight) / total_tokens - eps)))
        pos += weight
    return out


def make_cues(
    caption: str,
    words: Sequence[WordTiming],
    duration_s: float,
    width: int,
    height: int,
    *,
    max_lines: int = 2,
    max_cue_s: float = 4.0,
    hold_s: float = 0.4,
    chain: FontChain | None = None,
) -> list[Cue]:
    """Chunk the narration text into cues that fit ``max_lines`` lines of the safe area and
    follow the word timings. Consecutive cues touch when the gap between them is short."""
    chain = chain or default_chain()
    px = caption_px(width, height)
    area = safe_area(width, height)
    tokens = tokenize(chain.renderable(" ".join(caption.split())))
    if not tokens:
        return []
    times = time_tokens(tokens, words, duration_s)

    def measure(s: str) -> float:
        return text_width(s, px, BOLD, chain)

    # Split words wider than a line first, so that no cue needs more than max_lines lines.
    split_tokens: list[Token] = []
    split_times: list[tuple[float, float]] = []
    for tok, (t0, t1) in zip(tokens, times, strict=True):
        pieces = [tok] if measure(tok.text) <= area.width else _split_wide(tok, area.width, measure)
        total = sum(_weight(p.text) for p in pieces)
        acc = 0
        for piece in pieces:
            begin = t0 + (t1 - t0) * acc / total
            acc += _weight(piece.text)
            split_tokens.append(piece)
            split_times.append((begin, t0 + (t1 - t0) * acc / total))
    tokens, times = split_tokens, split_times

    groups: list[list[int]] = []
    current: list[int] = []
    for i, tok in enumerate(tokens):
        if current:
            trial = [tokens[j] for j in [*current, i]]
            too_long = times[i][1] - times[current[0]][0] > max_cue_s
            if too_long or len(wrap_tokens(trial, area.width, measure)) > max_lines:
                groups.append(current)
                current = []
        current.append(i)
        if tok.text.endswith(_SENTENCE_END) and times[i][1] - times[current[0]][0] >= 1.0:
            groups.append(current)
            current = []
    if current:
        groups.append(current)

    cues: list[Cue] = []
    for group in groups:
        toks = [tokens[j] for j in group]
        toks[0] = Token(toks[0].text, False)
        lines = [join_tokens(line) for line in balanced_wrap(toks, area.width, measure)]
        start = max(0.0, times[group[0]][0])
        end = max(start + 0.1, times[group[-1]][1])
        cues.append(Cue(text=join_tokens(toks), lines=lines, start_s=start, end_s=end))
    for cue in cues:
        cue.start_s, cue.end_s = round(cue.start_s, 3), round(cue.end_s, 3)
    for a, b in itertools.pairwise(cues):
        if b.start_s - a.end_s < 0.6:
            a.end_s = b.start_s
        else:
            a.end_s += hold_s
        if a.end_s - a.start_s < 0.5:
            a.end_s = min(a.start_s + 0.5, b.start_s)
    cues[-1].end_s = round(max(cues[-1].end_s + hold_s, cues[-1].start_s + 0.8), 3)
    return cues


# --------------------------------------------------------------------------- drawing


def visual_order(tokens: Sequence[Token], base: str) -> list[int]:
    """Indices of ``tokens`` left to right. Tokens without a strong direction take the
    direction of their neighbours when both agree, else the base direction; runs opposite
    to the base keep their internal order reversed (two-level bidi)."""
    dirs = [_direction(t.text) for t in tokens]
    resolved: list[str] = []
    for i, d in enumerate(dirs):
        if d is None:
            before = next((x for x in reversed(dirs[:i]) if x), base)
            after = next((x for x in dirs[i + 1 :] if x), base)
            d = before if before == after else base
        resolved.append(d)
    order = list(range(len(tokens)))
    if base == "rtl":
        order.reverse()
        resolved = resolved[::-1]
    out: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and resolved[j] != base:
            j += 1
        if j > i:
            out += order[i:j][::-1]
            i = j
        else:
            out.append(order[i])
            i += 1
    return out


def draw_line(
    img: Image.Image,
    text: str,
    center_x: float,
    baseline: float,
    style: TextStyle,
    *,
    base: str | None = None,
    chain: FontChain | None = None,
) -> None:
    """Draw one line centred on ``center_x``: shadow, outline, fill."""
    chain = chain or default_chain()
    tokens = tokenize(chain.renderable(text))
    if not tokens:
        return
    base = base or base_direction(text)
    px, weight = style.px, style.weight

    def measure(s: str) -> float:
        return text_width(s, px, weight, chain)

    space = measure(" ")
    order = visual_order(tokens, base)
    widths = [measure(t.text) for t in tokens]
    gaps = []
    for a, b in itertools.pairwise(order):
        later = tokens[max(a, b)]
        gaps.append(space if later.space_before else 0.0)
    total = sum(widths) + sum(gaps)
    x = center_x - total / 2

    draw = ImageDraw.Draw(img)
    sw = style.stroke_width
    offset = max(1, round(px / 18))
    placements: list[tuple[float, str, Face]] = []
    for k, idx in enumerate(order):
        runs = chain.runs(tokens[idx].text)
        token_rtl = _direction(tokens[idx].text) == "rtl"
        if token_rtl:
            runs = runs[::-1]
        rx = x
        for run, face in runs:
            placements.append((rx, run, face))
            rx += _run_width(run, face, px, weight)
        x += widths[idx] + (gaps[k] if k < len(gaps) else 0.0)
    if style.shadow[3]:
        _draw_shadow(img, placements, baseline, style, offset)
    for rx, run, face in placements:
        font = truetype(face, px, weight)
        direction = "rtl" if _direction(run) == "rtl" else "ltr"
        draw.text(
            (rx, baseline),
            run,
            font=font,
            fill=style.fill,
            anchor="ls",
            direction=direction,
            # A colour glyph's plain outline is a placeholder, not its shape: no stroke.
            stroke_width=0 if face.color else sw,
            stroke_fill=style.stroke,
            embedded_color=face.color,
        )


def _draw_shadow(
    img: Image.Image,
    placements: Sequence[tuple[float, str, Face]],
    baseline: float,
    style: TextStyle,
    offset: int,
) -> None:
    shadow = Image.new("RGBA", img.size, (0, 0, 0, 0))
    sdraw = ImageDraw.Draw(shadow)
    for rx, run, face in placements:
        if face.color:
            continue  # its outline is a placeholder; colour emoji cast no caption shadow
        sdraw.text(
            (rx + offset, baseline + offset),
            run,
            font=truetype(face, style.px, style.weight),
            fill=style.shadow,
            anchor="ls",
            direction="rtl" if _direction(run) == "rtl" else "ltr",
            stroke_width=style.stroke_width,
            stroke_fill=style.shadow,
        )
    img.alpha_composite(shadow.filter(ImageFilter.GaussianBlur(max(1, offset))))


def render_lines(
    lines: Sequence[str], width: int, style: TextStyle, chain: FontChain | None = None
) -> Image.Image:
    """A transparent image ``width`` wide holding ``lines`` centred, one under the other."""
    pad = style.stroke_width + max(2, round(style.px / 10))
    height = 2 * pad + style.line_px * len(lines) + round(style.px * 0.12)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    base = base_direction(" ".join(lines))
    for i, line in enumerate(lines):
        baseline = pad + i * style.line_px + round(style.px * 1.02)
        draw_line(img, line, width / 2, baseline, style, base=base, chain=chain)
    return img


class Placement(BaseModel):
    """A rendered cue image and where its top-left corner goes on the frame."""

    path: Path
    x: int
    y: int
    start_s: float
    end_s: float


def render_cue(
    cue: Cue, width: int, height: int, out: Path, chain: FontChain | None = None
) -> Placement:
    """Render ``cue`` to a PNG sized to its text, placed bottom-aligned in the safe area."""
    area = safe_area(width, height)
    style = TextStyle(px=caption_px(width, height))
    pad = style.stroke_width + max(2, round(style.px / 10))
    img = render_lines(cue.lines, area.width + 2 * pad, style, chain)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    x = area.x - pad
    y = max(0, area.bottom - img.height + pad)
    return Placement(path=out, x=x, y=y, start_s=cue.start_s, end_s=cue.end_s)
