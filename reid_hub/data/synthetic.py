"""Generated "coat pattern" animals, made by reid-hub (CC0): demo and test data that can ship anywhere.

Each individual is a random pattern of spots and stripes (its seed); each photo of it is a random
similarity warp of the pattern with noise and a brightness change, so individuals are told apart by
their pattern, as with spotted or striped species."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def coat(seed: int, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """The coat of individual `seed`: an RGB image of its spot and stripe pattern."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", size, int(rng.integers(90, 160)))
    d = ImageDraw.Draw(img)
    for _ in range(70):
        x, y = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        r = rng.uniform(3, 12)
        d.ellipse([x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r], fill=int(rng.choice([20, 235])))
    for _ in range(8):
        d.line([tuple(rng.uniform(0, size[0], 1)) + tuple(rng.uniform(0, size[1], 1)),
                tuple(rng.uniform(0, size[0], 1)) + tuple(rng.uniform(0, size[1], 1))],
               fill=int(rng.integers(0, 255)), width=int(rng.integers(2, 6)))
    return img.filter(ImageFilter.GaussianBlur(0.8)).convert("RGB")


def photo(base: Image.Image, seed: int, strength: float = 1.0) -> Image.Image:
    """A new photo of the same animal: rotated, scaled, shifted, re-lit and noisy."""
    rng = np.random.default_rng(seed)
    img = base.rotate(float(rng.uniform(-12, 12)) * strength, resample=Image.BILINEAR,
                      translate=tuple(int(v) for v in rng.integers(-10, 11, 2) * strength), fillcolor=(128, 128, 128))
    s = 1 + float(rng.uniform(-0.12, 0.12)) * strength
    img = img.resize((int(img.width * s), int(img.height * s)), Image.BILINEAR)
    a = np.asarray(img, np.float32) * float(rng.uniform(0.8, 1.2)) + rng.normal(0, 6, (img.height, img.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


__all__ = ["coat", "photo"]
