"""Caption layout and rendering: wrapping, cue timing, scripts and fallback fonts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.render.captions import (
    Cue,
    TextStyle,
    caption_px,
    make_cues,
    render_cue,
    render_lines,
    safe_area,
    text_width,
    time_tokens,
    tokenize,
    visual_order,
    wrap_text,
)
from pipeline.render.fonts import default_chain
from providers.base import WordTiming

SIZES = [(720, 1280), (1280, 720), (720, 720), (1080, 1920), (360, 640)]


def ink(img: Image.Image) -> np.ndarray:
    return np.asarray(img)[:, :, 3] > 0


def words_at(text: str, step: float = 0.4, start: float = 0.0) -> list[WordTiming]:
    return [
        WordTiming(text=w, start_s=start + i * step, end_s=start + i * step + step * 0.8)
        for i, w in enumerate(text.split())
    ]


@pytest.mark.parametrize(("w", "h"), SIZES)
def test_safe_area_keeps_side_margins_and_stays_above_the_controls(w: int, h: int) -> None:
    area = safe_area(w, h)
    assert area.x == pytest.approx(w * 0.08, abs=1)
    assert area.right == pytest.approx(w * 0.92, abs=1)
    assert area.y >= h * 2 / 3 - 1
    assert area.bottom <= h * 0.88 + 1
    assert area.height >= 2 * TextStyle(px=caption_px(w, h)).line_px  # two lines fit


def test_wrapping_a_word_longer_than_the_line_splits_it_inside_the_margins() -> None:
    area = safe_area(720, 1280)
    px = caption_px(720, 1280)
    text = "a " + "Pneumonoultramicroscopicsilicovolcanoconiosis" * 2 + " ends here"
    lines = wrap_text(text, area.width, px)
    assert len(lines) >= 3
    assert all(text_width(line, px) <= area.width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_cjk_wraps_between_characters_within_the_margins() -> None:
    area = safe_area(720, 1280)
    px = caption_px(720, 1280)
    text = "灯塔看守人最后一次爬上楼梯，对着大海轻声说再见。明天鲸鱼会回来吗？"
    lines = wrap_text(text, area.width, px)
    assert len(lines) >= 2
    assert all(text_width(line, px) <= area.width for line in lines)
    assert "".join(lines) == text  # no spaces invented between characters
    assert not any(line[0] in "，。？" for line in lines)  # no line starts with closing punctuation


def test_tokenize_keeps_words_and_splits_cjk() -> None:
    assert [t.text for t in tokenize("Hello,  world!")] == ["Hello,", "world!"]
    assert [t.text for t in tokenize("你好，世界。")] == ["你", "好，", "世", "界。"]
    assert [t.text for t in tokenize("「鲸鱼」")] == ["「鲸", "鱼」"]


def test_cues_follow_word_timings_and_never_overlap() -> None:
    text = (
        "The lighthouse keeper climbed the winding stairs one last time. "
        "Far below, the stranded whale sang to the rising tide."
    )
    words = words_at(text)
    cues = make_cues(text, words, words[-1].end_s + 0.2, 720, 1280)
    assert len(cues) >= 3
    assert cues[0].start_s == pytest.approx(0.0)
    assert all(1 <= len(c.lines) <= 2 for c in cues)
    assert " ".join(c.text for c in cues) == text
    for a, b in itertools.pairwise(cues):
        assert a.start_s < a.end_s <= b.start_s
    # each cue starts when its first word is spoken
    starts = {w.text: w.start_s for w in words}
    for cue in cues:
        first = cue.text.split()[0]
        assert cue.start_s == pytest.approx(starts[first], abs=0.01)
    # the first sentence ends a cue: no cue mixes the two sentences
    assert any(c.text.endswith("time.") for c in cues)


def test_sentence_timings_are_spread_over_the_words_of_each_sentence() -> None:
    timings = [
        WordTiming(text="First comes the storm.", start_s=0.2, end_s=1.8),
        WordTiming(text="Then the calm.", start_s=3.0, end_s=4.0),
    ]
    times = time_tokens(tokenize("First comes the storm. Then the calm."), timings, 4.0)
    assert times[0][0] == pytest.approx(0.2)
    assert times[3][1] == pytest.approx(1.8)
    assert times[4][0] == pytest.approx(3.0)  # not stretched across the pause
    assert times[-1][1] == pytest.approx(4.0)
    starts = [t[0] for t in times]
    assert starts == sorted(starts)


def test_without_timings_cues_cover_the_narration() -> None:
    cues = make_cues("one two three four five six seven eight nine ten " * 3, [], 9.0, 720, 1280)
    assert cues[0].start_s == 0.0
    assert cues[-1].end_s >= 9.0
    assert len(cues) >= 2


def test_visual_order_reverses_runs_against_the_base_direction() -> None:
    toks = tokenize("مرحبا بالعالم hello world")
    # RTL paragraph: the Arabic words read right to left; the English run keeps its order.
    assert visual_order(toks, "rtl") == [2, 3, 1, 0]
    toks = tokenize("she said שלום עולם today")
    assert visual_order(toks, "ltr") == [0, 1, 3, 2, 4]


def test_arabic_is_shaped_and_rendered() -> None:
    word = "مرحبا"
    shaped = text_width(word, 48)
    isolated = sum(text_width(ch, 48) for ch in word)
    assert shaped != pytest.approx(isolated, abs=0.5)  # joined forms, not isolated letters
    img = render_lines(["مرحبا بالعالم، هذه قصة"], 600, TextStyle(px=48))
    assert ink(img).sum() > 1000


@pytest.mark.parametrize(
    "text",
    [
        "שלום עולם",
        "नमस्ते दुनिया",
        "สวัสดีชาวโลก",
        "Привет, мир. Γειά σου κόσμε.",
        "鲸鱼回来了。クジラ",
        "🐋🌊❤️👍🏽",
    ],
)
def test_every_bundled_script_produces_pixels(text: str) -> None:
    chain = default_chain()
    assert chain.renderable(text).replace(" ", "") != ""
    img = render_lines([text], 700, TextStyle(px=44))
    assert ink(img).sum() > 300


def test_emoji_comes_from_the_colour_emoji_face() -> None:
    runs = [(run.strip(), face) for run, face in default_chain().runs("hi 🐋 ★")]
    faces = {run: (face.name, face.color) for run, face in runs if run}
    assert faces["hi"] == ("NotoSans", False)
    assert faces["🐋"] == ("OpenMoji", True)
    assert not faces["★"][1]  # a text symbol stays a text glyph


@pytest.mark.parametrize("px", [28, 44, 72])
def test_emoji_are_drawn_in_colour_at_text_size(px: int) -> None:
    img = render_lines(["Hello 🐱🚀🌙"], 900, TextStyle(px=px))
    rgba = np.asarray(img).astype(int)
    opaque = rgba[:, :, 3] > 200
    rgb = rgba[:, :, :3]
    saturated = opaque & ((rgb.max(axis=2) - rgb.min(axis=2)) > 80)
    assert saturated.sum() > px * px // 4, "emoji are monochrome"
    hues = {tuple(c // 64) for c in rgb[saturated]}
    assert len(hues) >= 3  # orange cat, red rocket, yellow moon
    ys, xs = np.nonzero(saturated)
    # As tall as the text around them: neither a tiny glyph nor a giant bitmap.
    assert 0.6 * px <= ys.max() - ys.min() + 1 <= 1.4 * px
    assert xs.min() > text_width("Hello", px) * 0.8


def test_font_coverage_is_read_from_the_cmap() -> None:
    chain = default_chain()
    assert chain.base.covers("A") and chain.base.covers("Ж")
    assert not chain.base.covers("中")
    assert chain.face_for("中") is not None
    assert chain.face_for("\U0010fffd") is None


def test_a_glyph_no_font_has_is_dropped_without_crashing(tmp_path: Path) -> None:
    text = "whale \U0010fffd song \U00013000\U0001d11e end"
    cues = make_cues(text, [], 2.0, 720, 1280)
    assert cues and "\U0010fffd" not in cues[0].text
    placement = render_cue(cues[0], 720, 1280, tmp_path / "cue.png")
    assert ink(Image.open(placement.path).convert("RGBA")).sum() > 500
    assert make_cues("\U0010fffd\U0010fffe", [], 2.0, 720, 1280) == []


@pytest.mark.parametrize(("w", "h"), SIZES)
def test_rendered_cue_is_white_with_a_dark_outline_inside_the_safe_area(
    w: int, h: int, tmp_path: Path
) -> None:
    text = "The whale sang all night long under the old lighthouse"
    lines = wrap_text(text, safe_area(w, h).width, caption_px(w, h))[:2]
    cue = Cue(text=text, lines=lines, start_s=0, end_s=1)
    p = render_cue(cue, w, h, tmp_path / "cue.png")
    img = np.asarray(Image.open(p.path).convert("RGBA"))
    area = safe_area(w, h)
    opaque = img[:, :, 3] > 200
    ys, xs = np.nonzero(opaque)
    pad = TextStyle(px=caption_px(w, h)).stroke_width + 2
    assert p.x + xs.min() >= area.x - pad and p.x + xs.max() <= area.right + pad
    assert p.y + ys.min() >= area.y - pad and p.y + ys.max() <= area.bottom + pad
    rgb = img[:, :, :3][opaque].astype(int)
    assert (rgb.min(axis=1) > 235).sum() > 200  # white fill
    assert (rgb.max(axis=1) < 40).sum() > 200  # dark outline


def test_two_line_cues_are_balanced_not_a_full_line_and_a_widow() -> None:
    text = "The whale sang to the keeper all night long, and the sea listened."
    (cue,) = make_cues(text, [], 4.0, 1280, 720)
    assert len(cue.lines) == 2
    widths = sorted(text_width(line, caption_px(1280, 720)) for line in cue.lines)
    assert widths[0] / widths[1] > 0.7
    (cjk,) = make_cues("灯塔看守人最后一次爬上楼梯，对着大海轻声说再见。", [], 4.0, 1280, 720)
    assert min(len(line) for line in cjk.lines) >= 8
