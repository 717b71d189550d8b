"""The sample images of the page "Try it: SSD in your browser" (docs/samples/), cut from the
validation sets of the built-in synthetic datasets (seed 0), two of them resized to another shape
(Pillow's bilinear) so that the page's resize is tested; and ``docs/samples/truth.json``: each
sample's true boxes ``[class, x1, y1, x2, y2]`` in pixels of the sample file.

    python tools/try_samples.py          # rewrites docs/samples/
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "docs" / "samples"
SAMPLES = {  # dataset -> (validation index, size of the file (W, H) or None for 256 x 256)
    "bananas": [(17, None), (8, (413, 311)), (3, None), (42, None)],
    "fruit": [(5, None), (30, (380, 520)), (11, None), (64, None)],
}


def name_of(kind: str, index: int, size) -> str:
    """``banana_val_8_413x311.png``: the sample's file name."""
    stem = {"bananas": "banana"}.get(kind, kind)
    return f"{stem}_val_{index}" + (f"_{size[0]}x{size[1]}" if size else "") + ".png"


def sample_paths(kind: str) -> list[str]:
    """The site paths (``samples/NAME.png``) of ``kind``'s samples, in :data:`SAMPLES`'s order."""
    return [f"samples/{name_of(kind, *pick)}" for pick in SAMPLES[kind]]


def main() -> int:
    from multissd.data.datasets import load_splits
    truth = {}
    for kind, picks in SAMPLES.items():
        _, val = load_splits(kind)
        for index, size in picks:
            image = Image.fromarray(np.asarray(val.images[index]).transpose(1, 2, 0).astype(np.uint8))
            if size:
                image = image.resize(size, Image.BILINEAR)
            name = name_of(kind, index, size)
            image.save(OUT / name)
            objects = val.labels[index][val.labels[index][:, 0] >= 0]
            scale = np.array([image.width, image.height] * 2, np.float64)
            truth[f"samples/{name}"] = [[int(row[0]), *np.round(row[1:] * scale, 2).tolist()] for row in objects]
            print(OUT / name)
    (OUT / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
