"""Figures for a projector: drawn at twice their size, shown at their size, in a small file."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import plots  # noqa: E402


def figure(dpi):
    fig, ax = plt.subplots(figsize=(4, 3), dpi=dpi)
    x = np.linspace(0, 6, 200)
    ax.plot(x, np.sin(x), label="sin")
    ax.contour(*np.meshgrid(x, x), np.add.outer(x, x) ** 2, levels=12)
    ax.legend()
    return fig


def test_a_sharp_png_is_drawn_at_twice_the_size_it_is_shown_at():
    for dpi in (72, 80, 144):
        fig = figure(dpi)
        data, metadata = plots.sharp_png(fig)
        image = Image.open(io.BytesIO(data))
        ordinary = io.BytesIO()
        fig.savefig(ordinary, format="png", bbox_inches="tight")
        shown = Image.open(ordinary).size  # what the figure is at its own dpi
        plt.close(fig)
        assert image.format == "PNG" and image.mode == "P"  # a palette: small
        assert abs(metadata["width"] - shown[0]) <= 1 and abs(metadata["height"] - shown[1]) <= 1
        assert image.size[0] // 2 == metadata["width"] and image.size[1] // 2 == metadata["height"]


def test_the_palette_changes_nothing_visible_and_the_file_is_smaller():
    fig = figure(72)
    data, _ = plots.sharp_png(fig)
    full = io.BytesIO()
    fig.savefig(full, format="png", dpi=144, bbox_inches="tight")
    plt.close(fig)
    sharp = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)
    reference = np.asarray(Image.open(full).convert("RGB"), dtype=float)
    assert sharp.shape == reference.shape
    assert np.abs(sharp - reference).mean() < 2.0  # out of 255, averaged over the pixels
    assert len(data) < len(full.getvalue())


def test_an_ipython_shell_shows_every_figure_sharp_and_none_outside_one():
    plots.show_sharp_figures()  # no shell yet: a no-op, not an error
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        formats = shell.display_formatter.formatters["image/png"]
        fig = figure(72)
        assert formats(fig) is None  # a plain shell has no PNG formatter for figures
        plots.show_sharp_figures()
        data, metadata = formats(fig)
        plt.close(fig)
        assert Image.open(io.BytesIO(data)).mode == "P" and metadata == plots.sharp_png(fig)[1]
    finally:
        InteractiveShell.clear_instance()
