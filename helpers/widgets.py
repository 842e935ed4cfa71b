"""Interactive explorers built with ipywidgets: thin views over pure functions of other modules.

Each explorer keeps one matplotlib figure, rendered off-screen with Agg into an
`ipywidgets.Image`: a control change recomputes (with the pure function the tests cover), moves
the data of the existing lines, and renders again. No figure is ever created twice, and what does
not move (contours, axes, ticks) is drawn once and kept as a bitmap: an update draws only the
lines and titles over it ("blitting"), which keeps it within a few milliseconds.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from helpers import plots
from helpers.metrics import (
    ThresholdMetrics,
    average_precision_score,
    metrics_at_threshold,
    precision_recall_curve,
)
from helpers.surfaces import KNOBS, SURFACES, Exploration, explore, knob_options, loss_range
from helpers.training import History, RunGrid

# --------------------------------------------------------------------------------------------
# Chapters 03-05: the learning-rate explorer
# --------------------------------------------------------------------------------------------

_GOOD, _BAD = "#1a7f37", "#cf222e"


class _Blitted:
    """Renders `self.figure` to PNG, drawing the axes once and only `self._moving` after that.

    A subclass sets `figure`, `_moving` (artists marked animated) and `_background = None`.
    """

    def render(self) -> bytes:
        """The figure as PNG bytes: the kept background, with the moving artists drawn over it."""
        canvas = self.figure.canvas
        if self._background is None:
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.figure.bbox)
        canvas.restore_region(self._background)
        for artist in self._moving:
            self.figure.draw_artist(artist)
        buffer = io.BytesIO()
        Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).save(
            buffer, format="png", compress_level=1)
        return buffer.getvalue()


class LearningRateExplorer(_Blitted):
    """Pick an optimizer, a surface, the learning rate and the optimizer's own knobs; watch.

    Left: the path on the surface's contours. Right: $f(\\theta_t) - f^*$ against the step (log
    scale). The status line says whether the run diverged and, for SGD on a quadratic, whether
    the learning rate is below the stable limit $2(1+\\mu)/\\lambda_{\\max}$. Display it with
    `display(explorer)` or as the last expression of a cell; `explorer.frame()` is the pure
    computation behind the current picture.
    """

    def __init__(self, optimizer: str = "SGD", surface: str = "quadratic", lr: float = 0.05,
                 steps: int = 50, *, dpi: int = 72):
        if surface not in SURFACES:
            raise ValueError(f"expected a surface among {list(SURFACES)}, but got {surface!r}")
        if optimizer not in KNOBS:
            raise ValueError(f"expected an optimizer among {list(KNOBS)}, but got {optimizer!r}")
        self.surface = SURFACES[surface]()
        slider = dict(continuous_update=True, style={"description_width": "80px"})
        self.controls = {
            "optimizer": widgets.Dropdown(options=list(KNOBS), value=optimizer,
                                          description="optimizer"),
            "surface": widgets.Dropdown(options=list(SURFACES), value=surface,
                                        description="surface"),
            "lr": widgets.FloatLogSlider(value=lr, base=10, min=-4, max=1, step=0.02,
                                         readout_format=".3g", description="lr", **slider),
            "momentum": widgets.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01,
                                            description="momentum", **slider),
            "nesterov": widgets.Checkbox(value=False, description="nesterov"),
            "alpha": widgets.FloatSlider(value=0.99, min=0.5, max=0.999, step=0.001,
                                         readout_format=".3f", description="alpha", **slider),
            "beta1": widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01,
                                         description="beta1", **slider),
            "beta2": widgets.FloatSlider(value=0.999, min=0.5, max=0.9999, step=0.0001,
                                         readout_format=".4f", description="beta2", **slider),
            "steps": widgets.IntSlider(value=steps, min=5, max=300, step=5,
                                       description="steps", **slider),
            "x0": widgets.FloatSlider(description="start x", step=0.05, **slider),
            "y0": widgets.FloatSlider(description="start y", step=0.05, **slider),
        }
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.figure = Figure(figsize=(9.0, 3.6), dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.88, wspace=0.22)
        self.path_ax, self.loss_ax = self.figure.subplots(1, 2)
        (self.path_line,) = self.path_ax.plot([], [], ".-", color="C3", markersize=3, lw=1.2)
        (self.start_marker,) = self.path_ax.plot([], [], "o", color="C3", markersize=6)
        (self.loss_line,) = self.loss_ax.semilogy([1], [1], color="C3")
        self.loss_ax.set(xlabel="step", ylabel="f - f*")
        self._moving = [self.path_line, self.start_marker, self.loss_line, self.path_ax.title,
                        self.loss_ax.title]
        for artist in self._moving:
            artist.set_animated(True)  # left out of full draws; drawn over the background
        self._background = None
        self._muted = False
        self._show_surface()
        self._show_knobs()
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.update()

    # the pure part ----------------------------------------------------------------------------

    def frame(self) -> Exploration:
        """What the controls ask for, computed by `helpers.surfaces.explore`."""
        value = {name: control.value for name, control in self.controls.items()}
        options = knob_options(value["optimizer"], momentum=value["momentum"],
                               nesterov=value["nesterov"], alpha=value["alpha"],
                               beta1=value["beta1"], beta2=value["beta2"])
        return explore(self.surface, value["optimizer"], value["lr"], value["steps"],
                       (value["x0"], value["y0"]), **options)

    # the view ---------------------------------------------------------------------------------

    def update(self) -> Exploration:
        """Recompute, move the lines' data, re-render the same figure; returns the frame."""
        frame = self.frame()
        points = frame.trajectory.points.numpy()
        gap = np.maximum(frame.trajectory.losses.numpy() - self.surface.minimum_value,
                         plots.LOSS_FLOOR)
        self.path_line.set_data(points[:, 0], points[:, 1])
        self.start_marker.set_data(points[:1, 0], points[:1, 1])
        self.loss_line.set_data(np.arange(len(gap)), gap)
        bad = frame.trajectory.diverged or frame.stable is False
        self.loss_ax.set_title(frame.limit_text or frame.verdict, fontsize=10,
                               color=_BAD if bad else _GOOD)
        self.path_ax.set_title(f"{self.controls['optimizer'].value}: {frame.verdict}",
                               fontsize=10, color=_BAD if frame.trajectory.diverged else "black")
        self.status.value = (f"<b style='color:{_BAD if bad else _GOOD}'>{frame.verdict}"
                             f"{'; ' + frame.limit_text if frame.limit_text else ''}</b>")
        self.image.value = self.render()
        return frame

    @property
    def widget(self) -> widgets.Widget:
        c = self.controls
        knobs = widgets.VBox([c["momentum"], c["nesterov"], c["alpha"], c["beta1"], c["beta2"]])
        left = widgets.VBox([c["optimizer"], c["surface"], c["lr"], c["steps"], c["x0"], c["y0"]])
        return widgets.VBox([widgets.HBox([left, knobs]), self.status, self.image])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # reacting to the controls -------------------------------------------------------------------

    @contextmanager
    def _quietly(self):
        self._muted = True
        try:
            yield
        finally:
            self._muted = False

    def _changed(self, change) -> None:
        if self._muted:
            return
        if change["owner"] is self.controls["surface"]:
            self.surface = SURFACES[change["new"]]()
            self._show_surface()
        if change["owner"] is self.controls["optimizer"]:
            self._show_knobs()
        if change["owner"] is self.controls["steps"]:
            self.loss_ax.set_xlim(0, change["new"])
            self._background = None
        self.update()

    def _show_surface(self) -> None:
        """Draw the new surface's contours under the same lines, and reset the start point."""
        ax = self.path_ax
        for artist in [*ax.collections, *ax.lines]:
            if artist not in (self.path_line, self.start_marker):
                artist.remove()
        plots.plot_surface(self.surface, ax)
        self.loss_ax.set_xlim(0, self.controls["steps"].value)
        self.loss_ax.set_ylim(*loss_range(self.surface))
        self._background = None
        with self._quietly():
            for name, limits, start in (("x0", self.surface.xlim, self.surface.start[0]),
                                        ("y0", self.surface.ylim, self.surface.start[1])):
                slider = self.controls[name]
                slider.min, slider.max = -1e9, 1e9  # any order of assignments stays valid
                slider.min, slider.max, slider.value = limits[0], limits[1], start

    def _show_knobs(self) -> None:
        own = set(KNOBS[self.controls["optimizer"].value])
        own |= {"beta1", "beta2"} if "betas" in own else set()
        for name in ("momentum", "nesterov", "alpha", "beta1", "beta2"):
            self.controls[name].layout.display = None if name in own else "none"


# --------------------------------------------------------------------------------------------
# Chapter 07: the decision-threshold explorer
# --------------------------------------------------------------------------------------------


def describe_threshold(report: ThresholdMetrics) -> str:
    """One line: the counts and scores of a `helpers.metrics.metrics_at_threshold` report."""
    (tn, fp), (fn, tp) = report.confusion_matrix.tolist()
    return (f"threshold {report.threshold:.3f}: TP {tp}, FP {fp}, FN {fn}, TN {tn}; "
            f"precision {float(report.precision):.3f}, recall {float(report.recall):.3f}, "
            f"F1 {float(report.f1_score):.3f}")


class ThresholdExplorer:
    """Slide the decision threshold of a binary classifier ("positive iff score >= threshold").

    Left: the confusion matrix [[TN, FP], [FN, TP]]. Right: the precision-recall curve with the
    operating point of the threshold. The curve is computed once; a slider move calls
    `helpers.metrics.metrics_at_threshold` (`explorer.frame()`) and redraws. Where nothing is
    predicted positive, precision is 1 (``zero_division=1.0``), the end point the curve has too.
    Display it with `display(explorer)` or as the last expression of a cell.
    """

    def __init__(self, y_true, y_score, *, threshold: float = 0.5, pos_label: int = 1,
                 dpi: int = 72):
        self.y_true, self.y_score, self.pos_label = y_true, y_score, pos_label
        precision, recall, _ = precision_recall_curve(y_true, y_score, pos_label=pos_label)
        low, high = float(y_score.min()), float(y_score.max())
        step = (high - low) / 200 or 0.01
        self.slider = widgets.FloatSlider(  # one step past the highest score: nothing positive
            value=threshold, min=min(low, threshold), max=max(high + step, threshold),
            step=step, readout_format=".3f", description="threshold", continuous_update=True)
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.figure = Figure(figsize=(7.0, 3.2), dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        self.matrix_ax, self.curve_ax = self.figure.subplots(1, 2)
        plots.plot_precision_recall_curve(precision, recall, self.curve_ax)
        average_precision = average_precision_score(y_true, y_score, pos_label=pos_label)
        self.curve_ax.set_title(f"average precision {float(average_precision):.3f}", fontsize=10)
        (self.point,) = self.curve_ax.plot([], [], "o", color="C3", markersize=8)
        self.slider.observe(lambda change: self.update(), names="value")
        self.update()

    def frame(self) -> ThresholdMetrics:
        """The metrics at the slider's threshold: the pure computation behind the picture."""
        return metrics_at_threshold(self.y_true, self.y_score, self.slider.value,
                                    pos_label=self.pos_label, zero_division=1.0)

    def update(self) -> ThresholdMetrics:
        """Recompute, redraw the matrix and move the point, render again; returns the frame."""
        report = self.frame()
        self.matrix_ax.clear()
        plots.plot_confusion_matrix(report.confusion_matrix, self.matrix_ax,
                                    labels=["negative", "positive"])
        self.point.set_data([float(report.recall)], [float(report.precision)])
        self.status.value = describe_threshold(report)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        self.image.value = buffer.getvalue()
        return report

    @property
    def widget(self) -> widgets.Widget:
        return widgets.VBox([self.slider, self.status, self.image])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------------------------
# Chapter 06: real training runs under a learning rate, a schedule and a warm-up
# --------------------------------------------------------------------------------------------


def describe_run(history: History, lr: float, schedule: str, warmup: int) -> str:
    """One line: the setting of a precomputed run and how it ended."""
    setting = f"lr {lr:.3g}, {schedule}" + (f", warm-up {warmup} steps" if warmup else "")
    if history.diverged:
        return f"{setting}: diverged (the loss became inf or nan)"
    first, last = history.val_losses[0], history.val_losses[-1]
    verdict = "did not learn" if last >= first and history.val_accuracies[-1] < 0.2 else "learned"
    return (f"{setting}: {verdict}; validation loss {last:.3f}, "
            f"accuracy {history.val_accuracies[-1]:.3f}")


class TrainingRunExplorer(_Blitted):
    """Slide the learning rate, pick a schedule and a warm-up, and see the real training run.

    Every run comes from a `helpers.training.RunGrid` computed beforehand, so an update only looks
    a run up (the learning rate snaps to the nearest one of the grid) and redraws: the axes are
    fixed, kept as a bitmap, and only the lines and the title are drawn over them.
    """

    def __init__(self, grid: RunGrid, lr: float = 0.1, schedule: str = "constant",
                 warmup: int = 0, *, dpi: int = 72):
        self.grid = grid
        exponents = np.log10(grid.lrs)
        slider = dict(continuous_update=True, style={"description_width": "80px"})
        self.controls = {
            "lr": widgets.FloatLogSlider(value=grid.nearest_lr(lr), base=10,
                                         min=exponents.min(), max=exponents.max(),
                                         step=float(np.diff(exponents).min()),
                                         readout_format=".3g", description="lr", **slider),
            "schedule": widgets.Dropdown(options=grid.schedules, value=schedule,
                                         description="schedule"),
            "warmup": widgets.Dropdown(options=grid.warmups, value=warmup,
                                       description="warm-up"),
        }
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.figure = Figure(figsize=(10.0, 3.0), dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.07, right=0.98, bottom=0.17, top=0.85, wspace=0.32)
        self.lr_ax, self.loss_ax, self.acc_ax = self.figure.subplots(1, 3)
        steps = max(len(run.lrs) for run in grid.runs.values())
        lrs = [lr for run in grid.runs.values() for lr in run.lrs]
        self.lr_ax.set(xlim=(0, steps), ylim=(min(lrs) / 2, max(lrs) * 2), yscale="log",
                       xlabel="step", ylabel="learning rate")
        self.loss_ax.set(xlim=(0, steps), ylim=(1e-2, 10), yscale="log", xlabel="step",
                         ylabel="cross-entropy")
        self.acc_ax.set(xlim=(0, steps), ylim=(0, 1), xlabel="step",
                        ylabel="validation accuracy")
        (self.lr_line,) = self.lr_ax.plot([], [], color="C2")
        (self.train_line,) = self.loss_ax.plot([], [], color="C0", alpha=0.5, lw=0.8,
                                               label="train (step)")
        (self.val_line,) = self.loss_ax.plot([], [], "o-", color="C1", ms=3, label="validation")
        (self.acc_line,) = self.acc_ax.plot([], [], "o-", color="C3", ms=3)
        self.loss_ax.legend(fontsize=8, loc="upper right")
        self._moving = [self.lr_line, self.train_line, self.val_line, self.acc_line,
                        self.loss_ax.title]
        for artist in self._moving:
            artist.set_animated(True)
        self._background = None
        for control in self.controls.values():
            control.observe(lambda change: self.update(), names="value")
        self.update()

    def run(self) -> History:
        """The precomputed run the controls ask for (pure lookup)."""
        value = {name: control.value for name, control in self.controls.items()}
        return self.grid.run(value["lr"], value["schedule"], value["warmup"])

    def update(self) -> History:
        history = self.run()
        value = {name: control.value for name, control in self.controls.items()}
        lr = self.grid.nearest_lr(value["lr"])
        warmup = 0 if value["schedule"] == "one-cycle" else value["warmup"]
        text = describe_run(history, lr, value["schedule"], warmup)
        ends = plots.epoch_steps(history)
        self.lr_line.set_data(np.arange(len(history.lrs)), history.lrs)
        self.train_line.set_data(np.arange(len(history.step_losses)), history.step_losses)
        self.val_line.set_data(ends, history.val_losses)
        self.acc_line.set_data(ends, history.val_accuracies)
        good = "learned" in text and "did not" not in text
        self.loss_ax.set_title(text.split(": ")[-1], fontsize=10, color=_GOOD if good else _BAD)
        self.status.value = f"<b style='color:{_GOOD if good else _BAD}'>{text}</b>"
        self.image.value = self.render()
        return history

    @property
    def widget(self) -> widgets.Widget:
        return widgets.VBox([widgets.HBox(list(self.controls.values())), self.status, self.image])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
