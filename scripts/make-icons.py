"""Draws the app icons in icons/ (run once; the PNGs are committed). Needs Pillow.

A white leaf in a camera viewfinder on the app's green. `maskable` keeps the drawing inside the
central 80 % safe zone that Android crops icons to.
"""
import math
from pathlib import Path

from PIL import Image, ImageDraw

GREEN, WHITE = (47, 111, 62, 255), (255, 255, 255, 255)
OUT = Path(__file__).resolve().parent.parent / "icons"


def draw(size: int, maskable: bool) -> Image.Image:
    scale = 4  # drawn large, then downsampled: smooth edges without an SVG renderer
    s = size * scale
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if maskable:
        d.rectangle([0, 0, s, s], fill=GREEN)
        inset = 0.2 * s
    else:
        d.rounded_rectangle([0, 0, s - 1, s - 1], radius=0.2 * s, fill=GREEN)
        inset = 0.12 * s
    box = s - 2 * inset
    u = lambda f: inset + f * box  # noqa: E731  fraction of the drawing box → pixels
    w = 0.045 * box
    for cx, cy, dx, dy in [(0, 0, 1, 1), (1, 0, -1, 1), (0, 1, 1, -1), (1, 1, -1, -1)]:
        x, y = u(cx), u(cy)
        d.line([(x, y), (x + dx * 0.22 * box, y)], fill=WHITE, width=int(w))
        d.line([(x, y), (x, y + dy * 0.22 * box)], fill=WHITE, width=int(w))
    leaf = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ld = ImageDraw.Draw(leaf)
    # A pointed leaf: the lens where two circles overlap (radius R, centres ±c from the axis).
    r, c, steps = 0.42, 0.22, 48
    half = math.sqrt(r * r - c * c)  # half the leaf's length
    right = [(-c + r * math.cos(t), r * math.sin(t)) for t in (math.asin(half / r) * (2 * i / steps - 1) for i in range(steps + 1))]
    outline = right + [(-x, -y) for x, y in right]
    ld.polygon([(u(0.5 + x), u(0.47 + y)) for x, y in outline], fill=WHITE)
    ld.line([(u(0.5), u(0.47 - half + 0.08)), (u(0.5), u(0.47 + half + 0.1))], fill=GREEN, width=int(0.035 * box))
    leaf = leaf.rotate(-35, center=(u(0.5), u(0.5)), resample=Image.BICUBIC)
    img.alpha_composite(leaf)
    return img.resize((size, size), Image.LANCZOS)


if __name__ == "__main__":
    for size in (192, 512):
        draw(size, False).save(OUT / f"icon-{size}.png")
        draw(size, True).save(OUT / f"icon-maskable-{size}.png")
    # iOS ignores the manifest's icons and takes this one, opaque, squared by the system.
    draw(180, True).convert("RGB").save(OUT / "apple-touch-icon.png")
    draw(32, False).save(OUT / "favicon-32.png")
