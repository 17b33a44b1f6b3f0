"""One image that shows a scene's candidate frames side by side, each with its number.

A chat that shows a scene as one picture (a Telegram photo whose buttons say 1, 2, 3) needs the
candidates in one numbered image. Drawing is CPU work, so :func:`numbered_sheet` runs in a thread.
"""

from __future__ import annotations

import asyncio
import io
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TILE_H = 640  # each frame's height in the sheet; a 9:16 frame is 360 wide
GAP = 8
MAX_SIDE = 2560  # Telegram refuses photos whose width and height add up to more than 10000
COLS_MAX = 4


def _layout(count: int) -> tuple[int, int]:
    cols = min(count, COLS_MAX) if count != 4 else 2  # four frames read best as 2 by 2
    return cols, math.ceil(count / cols)


def draw_numbered_sheet(paths: list[Path], tile_h: int = TILE_H, quality: int = 85) -> bytes:
    """The frames in a grid on a dark background, numbered 1..K from the top left; JPEG."""
    frames = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w = max(1, round(im.width * tile_h / max(1, im.height)))
            frames.append(im.resize((w, tile_h), Image.Resampling.LANCZOS))
    if not frames:
        raise ValueError("no frames to draw")
    cols, rows = _layout(len(frames))
    tile_w = max(f.width for f in frames)
    width, height = cols * tile_w + (cols + 1) * GAP, rows * tile_h + (rows + 1) * GAP
    sheet = Image.new("RGB", (width, height), (18, 18, 22))
    draw = ImageDraw.Draw(sheet)
    badge = max(28, tile_h // 9)
    font = ImageFont.load_default(size=round(badge * 0.72))
    for n, frame in enumerate(frames):
        r, c = divmod(n, cols)
        x = GAP + c * (tile_w + GAP) + (tile_w - frame.width) // 2
        y = GAP + r * (tile_h + GAP)
        sheet.paste(frame, (x, y))
        bx, by = x + GAP, y + GAP
        draw.ellipse((bx, by, bx + badge, by + badge), fill=(255, 255, 255),
                     outline=(18, 18, 22), width=2)
        draw.text((bx + badge / 2, by + badge / 2), str(n + 1), fill=(18, 18, 22), font=font,
                  anchor="mm")
    if max(sheet.size) > MAX_SIDE:
        scale = MAX_SIDE / max(sheet.size)
        sheet = sheet.resize((round(sheet.width * scale), round(sheet.height * scale)),
                             Image.Resampling.LANCZOS)
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


async def numbered_sheet(paths: list[Path], tile_h: int = TILE_H) -> bytes:
    """:func:`draw_numbered_sheet` off the event loop."""
    return await asyncio.to_thread(draw_numbered_sheet, list(paths), tile_h)
