"""The book's drawing helpers: what they put on a matplotlib axis."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from multissd.plots import show_bboxes  # noqa: E402


def _drawn(labels, colors):
    fig, ax = plt.subplots()
    show_bboxes(ax, np.array([[10, 10, 50, 60], [20, 30, 90, 95]], np.float32), labels, colors)
    rects = [(p.get_x(), p.get_y(), matplotlib.colors.to_hex(p.get_edgecolor())) for p in ax.patches]
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    return rects, texts


def test_show_bboxes_one_label_and_colour_as_strings_like_the_book():
    # The book's prediction section passes '%.2f' % score and 'w': one label, one colour.
    rects, texts = _drawn("0.47", "w")
    assert texts == ["0.47"]  # the whole string, not its first character
    assert [r[2] for r in rects] == ["#ffffff", "#ffffff"]
    rects, texts = _drawn(None, "lime")
    assert texts == [] and [r[2] for r in rects] == ["#00ff00", "#00ff00"]


def test_show_bboxes_cycles_colours_and_labels_each_box():
    rects, texts = _drawn(["dog", "cat"], ("b", "g", "r"))
    assert texts == ["dog", "cat"]
    assert [r[:2] for r in rects] == [(10.0, 10.0), (20.0, 30.0)]
    assert [r[2] for r in rects] == ["#0000ff", "#008000"]


def test_bench_chart_is_narrow_with_a_heading_per_measurement(tmp_path, monkeypatch):
    from PIL import Image

    from multissd import plots

    texts = []
    real_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text",
                        lambda self, x, y, s, *a, **k: texts.append(s) or real_text(self, x, y, s, *a, **k))
    rows = [dict(what="training step", implementation="book, torch eager (baseline)", ratio=1.0, goal=None),
            dict(what="training step", implementation="multissd paddle", ratio=0.5, goal=0.6),
            dict(what="multibox_target, 8 objects/image", implementation="multissd torch", ratio=12.0, goal=10.0)]
    path = plots.plot_bench(rows, tmp_path / "bench.png")
    width, height = Image.open(path).size
    assert width <= 600  # about 360 px wide on a phone keeps its 7.5-8 point text legible
    assert "training step" in texts and "multibox_target, 8 objects/image" in texts  # headings
    assert " 0.5x" in texts and " 12.0x" in texts
