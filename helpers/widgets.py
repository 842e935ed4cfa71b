"""Interactive explorers built with ipywidgets: thin views over pure functions of other modules.

Each explorer keeps one matplotlib figure, rendered off-screen with Agg into an
`ipywidgets.Image`: a control change recomputes (with the pure function the tests cover), moves
the data of the existing lines, and renders again. No figure is ever created twice, and what does
not move (contours, axes, ticks) is drawn once and kept as a bitmap: an update draws only the
lines and titles over it ("blitting"), which keeps it within a few milliseconds.
"""

from __future__ import annotations

import inspect
import io
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch
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
from helpers.surfaces import (
    KNOBS,
    SURFACE_KNOBS,
    SURFACES,
    Exploration,
    Surface,
    explore,
    knob_options,
    loss_range,
    make_surface,
)
from helpers.training import History, RunGrid, digits_mlp, evaluate

# --------------------------------------------------------------------------------------------
# Chapters 03-05: the learning-rate explorer
# --------------------------------------------------------------------------------------------

_GOOD, _BAD = plots.OUTCOME_COLORS[True], plots.OUTCOME_COLORS[False]


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
        # opaque, so RGB; then a 256-colour palette (lines and contours use far fewer): half the
        # time to encode and a third less to send, with no visible change
        buffer = io.BytesIO()
        Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert(
            "RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
            buffer, format="png", compress_level=1)
        return buffer.getvalue()


def outcome_color(good: bool | None) -> str:
    """Green for good, red for bad, amber for None (neither converging nor diverging: hovering,
    stalled at a saddle point): `plots.OUTCOME_COLORS`, as the static figures use them."""
    return plots.OUTCOME_COLORS[good]


class LearningRateExplorer(_Blitted):
    """Pick an optimizer, a surface, the learning rate and the optimizer's own knobs; watch.

    Left: the path on the surface's contours. Right: $f(\\theta_t) - f^*$ against the step (log
    scale). The status line is `helpers.surfaces.assess`'s verdict, judged on $f - f^*$ (green:
    reached the minimum or still decreasing; amber: hovering or stalled at a saddle point; red:
    grew or diverged) and, for SGD on a quadratic, whether the learning rate is below the stable
    limit ($2/\\lambda_{\\max}$, or $2(1+\\mu)/\\lambda_{\\max}$ with momentum) and the predicted
    per-step contraction $\\max_i |1 - \\gamma\\lambda_i|$. The quadratics have a condition number
    $\\kappa$ (and the rotated one an angle); AdamW has its weight decay.

    The run shown before the latest gesture stays behind the current one, faint, so that two
    settings can be compared: a gesture is a run of changes of one control, each within
    `GESTURE_PAUSE` seconds of the last; a change of surface clears it. Display the explorer with
    `display(explorer)` or as the last expression of a cell; `explorer.frame()` is the pure
    computation behind the current picture.
    """

    GESTURE_PAUSE = 0.5

    def __init__(self, optimizer: str = "SGD", surface: str = "quadratic", lr: float = 0.05,
                 steps: int = 50, *, dpi: int = 72):
        if surface not in SURFACES:
            raise ValueError(f"expected a surface among {list(SURFACES)}, but got {surface!r}")
        if optimizer not in KNOBS:
            raise ValueError(f"expected an optimizer among {list(KNOBS)}, but got {optimizer!r}")
        slider = dict(continuous_update=True, style={"description_width": "80px"})
        once = dict(continuous_update=False, style={"description_width": "80px"})
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
            "weight_decay": widgets.FloatSlider(value=0.01, min=0.0, max=1.0, step=0.01,
                                                description="weight decay", **slider),
            "steps": widgets.IntSlider(value=steps, min=5, max=300, step=5,
                                       description="steps", **slider),
            "x0": widgets.FloatSlider(description="start x", step=0.05, **slider),
            "y0": widgets.FloatSlider(description="start y", step=0.05, **slider),
            # the surface's own knobs redraw the contours: once per release, not per pixel
            "condition_number": widgets.FloatLogSlider(value=10.0, base=10, min=0, max=3,
                                                       step=0.05, readout_format=".3g",
                                                       description="κ", **once),
            "angle": widgets.FloatSlider(value=45.0, min=0.0, max=90.0, step=5.0,
                                         description="angle (°)", **once),
        }
        self._muted = False
        self._default_knobs()
        self.surface = self._make_surface()
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.figure = Figure(figsize=(9.0, 3.6), dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.88, wspace=0.22)
        self.path_ax, self.loss_ax = self.figure.subplots(1, 2)
        faint = dict(color="0.45", alpha=0.5, lw=1.0)
        (self.reference_path,) = self.path_ax.plot([], [], ".-", markersize=2, **faint)
        (self.reference_loss,) = self.loss_ax.semilogy([1], [1], **faint)
        (self.path_line,) = self.path_ax.plot([], [], ".-", color="C3", markersize=3, lw=1.2)
        (self.start_marker,) = self.path_ax.plot([], [], "o", color="C3", markersize=6)
        (self.loss_line,) = self.loss_ax.semilogy([1], [1], color="C3")
        self.loss_ax.set(xlabel="step", ylabel="f - f*")
        # the verdict is in the status line above the image, not in titles: text is the
        # slowest thing Agg draws, and a moving title would have to be drawn at every update
        self._moving = [self.reference_path, self.reference_loss, self.path_line,
                        self.start_marker, self.loss_line]
        for artist in self._moving:
            artist.set_animated(True)  # left out of full draws; drawn over the background
        self._background = None
        self._muted = False
        self.clock = time.monotonic  # replaceable in tests
        self._last_change = (None, -math.inf)  # (control, time) of the latest change
        self._shown: tuple[Exploration, str] | None = None  # the frame on screen, its setting
        self.reference: tuple[Exploration, str] | None = None  # the faint run, its setting
        self._show_surface()
        self._show_knobs()
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.update()

    # the pure part ----------------------------------------------------------------------------

    def _make_surface(self) -> Surface:
        c = self.controls
        return make_surface(c["surface"].value, condition_number=c["condition_number"].value,
                            angle=math.radians(c["angle"].value))

    def _default_knobs(self) -> None:
        """Set the surface's own knobs (κ, angle) to the defaults of its function."""
        parameters = inspect.signature(SURFACES[self.controls["surface"].value]).parameters
        with self._quietly():
            for name in SURFACE_KNOBS[self.controls["surface"].value]:
                default = parameters[name].default
                self.controls[name].value = math.degrees(default) if name == "angle" else default

    def frame(self) -> Exploration:
        """What the controls ask for, computed by `helpers.surfaces.explore`."""
        value = {name: control.value for name, control in self.controls.items()}
        options = knob_options(value["optimizer"], momentum=value["momentum"],
                               nesterov=value["nesterov"], alpha=value["alpha"],
                               beta1=value["beta1"], beta2=value["beta2"],
                               weight_decay=value["weight_decay"])
        return explore(self.surface, value["optimizer"], value["lr"], value["steps"],
                       (value["x0"], value["y0"]), **options)

    def setting(self) -> str:
        """The optimizer, learning rate and own knobs of the controls, in words."""
        c = self.controls
        name = c["optimizer"].value
        words = [f"{name}, lr {c['lr'].value:.3g}"]
        for knob in KNOBS[name]:
            if knob == "betas":
                words.append(f"betas ({c['beta1'].value:g}, {c['beta2'].value:g})")
            elif knob != "nesterov" or c["momentum"].value > 0:
                words.append(f"{knob.replace('_', ' ')} {c[knob].value:g}")
        return ", ".join(words)

    # the view ---------------------------------------------------------------------------------

    def update(self) -> Exploration:
        """Recompute, move the lines' data, re-render the same figure; returns the frame."""
        frame = self.frame()
        self._draw(frame.trajectory, self.path_line, self.loss_line)
        self.start_marker.set_data(self.path_line.get_xdata()[:1],
                                   self.path_line.get_ydata()[:1])
        if self.reference is None:
            for line in (self.reference_path, self.reference_loss):
                line.set_data([], [])
        else:
            self._draw(self.reference[0].trajectory, self.reference_path, self.reference_loss)
        color = outcome_color(frame.outcome.good)
        limit_color = _BAD if frame.stable is False else color
        details = "; ".join(text for text in (frame.limit_text, frame.rate_text) if text)
        faint = ("" if self.reference is None else
                 f"<br><span style='color:#6e7781'>faint: the previous run, "
                 f"{self.reference[1]}: {self.reference[0].verdict}</span>")
        self.status.value = (f"<b style='color:{color}'>{frame.verdict}</b>"
                             + (f"<br><span style='color:{limit_color}'>{details}</span>"
                                if details else "") + faint)
        self.image.value = self.render()
        self._shown = (frame, self.setting())
        return frame

    def _draw(self, trajectory, path_line, loss_line) -> None:
        points = trajectory.points.numpy()
        gap = np.maximum(trajectory.losses.numpy() - self.surface.minimum_value,
                         plots.LOSS_FLOOR)
        path_line.set_data(points[:, 0], points[:, 1])
        loss_line.set_data(np.arange(len(gap)), gap)

    @property
    def widget(self) -> widgets.Widget:
        c = self.controls
        knobs = widgets.VBox([c["momentum"], c["nesterov"], c["alpha"], c["beta1"], c["beta2"],
                              c["weight_decay"], c["condition_number"], c["angle"]])
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
        owner, now = change["owner"], self.clock()
        last_owner, last_time = self._last_change
        if owner is not last_owner or now - last_time > self.GESTURE_PAUSE:
            self.reference = self._shown  # a new gesture: what was shown becomes the reference
        self._last_change = (owner, now)
        if owner is self.controls["surface"]:
            self._default_knobs()
        if owner in (self.controls["surface"], self.controls["condition_number"],
                     self.controls["angle"]):
            self.surface = self._make_surface()
            self._show_surface(keep_start=owner is not self.controls["surface"])
            self.reference = None  # another surface: nothing to compare with
        if owner is self.controls["surface"]:
            self._show_knobs()
        if owner is self.controls["optimizer"]:
            self._show_knobs()
        if owner is self.controls["steps"]:
            self.loss_ax.set_xlim(0, change["new"])
            self._background = None
        self.update()

    def _show_surface(self, keep_start: bool = False) -> None:
        """Draw the new surface's contours under the same lines, and reset the start point."""
        ax = self.path_ax
        for artist in [*ax.collections, *ax.lines]:
            if artist not in (self.path_line, self.start_marker, self.reference_path):
                artist.remove()
        plots.plot_surface(self.surface, ax)
        self.loss_ax.set_xlim(0, self.controls["steps"].value)
        self.loss_ax.set_ylim(*loss_range(self.surface))
        self._background = None
        if keep_start:
            return
        with self._quietly():
            for name, limits, start in (("x0", self.surface.xlim, self.surface.start[0]),
                                        ("y0", self.surface.ylim, self.surface.start[1])):
                slider = self.controls[name]
                slider.min, slider.max = -1e9, 1e9  # any order of assignments stays valid
                slider.min, slider.max, slider.value = limits[0], limits[1], start

    def _show_knobs(self) -> None:
        own = set(KNOBS[self.controls["optimizer"].value])
        own |= {"beta1", "beta2"} if "betas" in own else set()
        own |= set(SURFACE_KNOBS[self.controls["surface"].value])
        for name in ("momentum", "nesterov", "alpha", "beta1", "beta2", "weight_decay",
                     "condition_number", "angle"):
            self.controls[name].layout.display = None if name in own else "none"


# --------------------------------------------------------------------------------------------
# Chapter 07: the decision-threshold explorer
# --------------------------------------------------------------------------------------------


def format_threshold(threshold: float) -> str:
    """A threshold to 3 decimals, or to 6 significant digits near 0 and 1 (where the scores of a
    confident model crowd: 0.999966 must not read as 1.000)."""
    return f"{threshold:.3f}" if 0.01 <= threshold <= 0.99 else f"{threshold:.6g}"


def describe_threshold(report: ThresholdMetrics) -> str:
    """One line: the counts and scores of a `helpers.metrics.metrics_at_threshold` report."""
    (tn, fp), (fn, tp) = report.confusion_matrix.tolist()
    return (f"threshold {format_threshold(float(report.threshold))}: TP {tp}, FP {fp}, FN {fn}, "
            f"TN {tn}; precision {float(report.precision):.3f}, recall "
            f"{float(report.recall):.3f}, F1 {float(report.f1_score):.3f}")


def threshold_steps(y_score, most: int = 400) -> list[float]:
    """The thresholds a slider should stop at: every distinct score, ascending, then one step past
    the highest (nothing predicted positive).

    Between two neighbouring distinct scores `score >= threshold` predicts the same, so these are
    all the operating points there are, one per stop, however the scores crowd (a confident model
    puts most of them above 0.99). With more than `most` distinct scores, every k-th is kept (the
    lowest and the highest always).
    """
    scores = torch.unique(torch.as_tensor(y_score).detach().cpu().double())
    if len(scores) > most:
        keep = torch.linspace(0, len(scores) - 1, most).round().long().unique()
        scores = scores[keep]
    above = scores[-1].item() + max((scores[-1] - scores[0]).item() / 200, 1e-3)
    return [*scores.tolist(), above]


def _unique_labels(values: list[float]) -> list[str]:
    for digits in range(3, 18):
        labels = [f"{v:.{digits}g}" if not 0.01 <= v <= 0.99 or digits > 3 else f"{v:.3f}"
                  for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(v) for v in values]


class ThresholdExplorer(_Blitted):
    """Slide the decision threshold of a binary classifier ("positive iff score >= threshold").

    Left: the confusion matrix [[TN, FP], [FN, TP]]. Right: the precision-recall curve with the
    operating point of the threshold. The slider, `explorer.slider`, stops at every
    distinct score (`threshold_steps`), so each step moves the operating point, even where a
    confident model's scores crowd near 0 or 1; the box, `explorer.box`, holds the threshold
    itself and takes any value (typed, or set in code). The curve is computed once; a change calls
    `helpers.metrics.metrics_at_threshold` (`explorer.frame()`) and redraws. Where nothing is
    predicted positive, precision is 1 (``zero_division=1.0``), the end point the curve has too.
    Display it with `display(explorer)` or as the last expression of a cell.
    """

    def __init__(self, y_true, y_score, *, threshold: float = 0.5, pos_label: int = 1,
                 dpi: int = 72):
        self.y_true, self.y_score, self.pos_label = y_true, y_score, pos_label
        precision, recall, _ = precision_recall_curve(y_true, y_score, pos_label=pos_label)
        self.steps = threshold_steps(y_score)
        self.box = widgets.FloatText(value=threshold, description="threshold",
                                     layout=widgets.Layout(width="220px"))
        self.slider = widgets.SelectionSlider(
            options=list(zip(_unique_labels(self.steps), self.steps, strict=True)),
            value=self._stop(threshold), description="score >=", continuous_update=True,
            layout=widgets.Layout(width="520px"))
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.figure = Figure(figsize=(7.0, 3.2), dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        self.matrix_ax, self.curve_ax = self.figure.subplots(1, 2)
        plots.plot_precision_recall_curve(precision, recall, self.curve_ax)
        average_precision = average_precision_score(y_true, y_score, pos_label=pos_label)
        self.curve_ax.set_title(f"average precision {float(average_precision):.3f}", fontsize=10)
        (self.point,) = self.curve_ax.plot([], [], "o", color="C3", markersize=8)
        plots.plot_confusion_matrix(torch.zeros(2, 2, dtype=torch.long), self.matrix_ax,
                                    labels=["negative", "positive"])
        self._moving = [*self.matrix_ax.images, *self.matrix_ax.texts, self.point]
        for artist in self._moving:
            artist.set_animated(True)
        self._background = None
        self._muted = False
        self.slider.observe(self._stepped, names="value")
        self.box.observe(self._typed, names="value")
        self.update()

    def _stop(self, threshold: float) -> float:
        """The stop that predicts exactly as `threshold` does: the lowest stop >= it."""
        return next((stop for stop in self.steps if stop >= threshold), self.steps[-1])

    def _stepped(self, change) -> None:
        if not self._muted:
            self.box.value = change["new"]  # updates through _typed

    def _typed(self, change) -> None:
        self._muted = True
        try:
            self.slider.value = self._stop(change["new"])
        finally:
            self._muted = False
        self.update()

    def frame(self) -> ThresholdMetrics:
        """The metrics at the threshold: the pure computation behind the picture."""
        return metrics_at_threshold(self.y_true, self.y_score, self.box.value,
                                    pos_label=self.pos_label, zero_division=1.0)

    def update(self) -> ThresholdMetrics:
        """Recompute, redraw the matrix and move the point, render again; returns the frame."""
        report = self.frame()
        plots.set_confusion_matrix(self.matrix_ax, report.confusion_matrix)
        self.point.set_data([float(report.recall)], [float(report.precision)])
        self.status.value = describe_threshold(report)
        self.image.value = self.render()
        return report

    @property
    def widget(self) -> widgets.Widget:
        return widgets.VBox([widgets.HBox([self.slider, self.box]), self.status, self.image])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------------------------
# Chapter 06: real training runs under a learning rate, a schedule and a warm-up
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chance:
    r"""What a classifier that ignores its input achieves on a labelled set.

    With $p_k$ the share of class $k$ among the labels: the best constant prediction (the class
    shares themselves) has cross-entropy $H(p) = -\sum_k p_k \log p_k$, $\log K$ for $K$
    balanced classes; always guessing the most frequent class has accuracy $\max_k p_k$, $1/K$
    for balanced classes.
    """

    loss: float
    accuracy: float
    classes: int


def chance_level(labels=None, *, classes: int | None = None) -> Chance:
    """The `Chance` of the class shares of `labels` (int class indices), or of `classes` balanced
    classes when no labels are given; by default the classes of chapter 06's digits MLP (the
    logits of `helpers.training.digits_mlp`)."""
    if labels is None:
        if classes is None:
            with torch.random.fork_rng(devices=[]):  # digits_mlp seeds the global generator
                classes = digits_mlp()[-1].out_features
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"expected classes as an integer >= 2, but got {classes!r}")
        return Chance(math.log(classes), 1 / classes, classes)
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.dtype.is_floating_point or len(labels) == 0:
        raise ValueError(f"expected a non-empty 1-D tensor of class indices, but got shape "
                         f"{tuple(labels.shape)} and dtype {labels.dtype}")
    counts = torch.bincount(labels).double()
    shares = counts[counts > 0] / counts.sum()
    return Chance(-(shares * shares.log()).sum().item(), shares.max().item(), len(counts))


LEARNED_MARGIN = 0.1
"""A run learned only if its final accuracy is above chance by this share of the way to 1..."""
LEARNED_WELL = 0.5
"""... and learned more than a little once it is at least this share of the way to 1."""
LOST_ACCURACY = 0.1
"""A run "learned, then lost it" if its final accuracy is this far below its best epoch's."""


def judge_run(history: History, chance: Chance | None = None,
              initial_loss: float | None = None) -> tuple[str, bool | None]:
    r"""How a precomputed run ended: `(verdict, good)`, good True / None / False for green /
    amber / red.

    With $A$ the final validation accuracy, $A^*$ the best over the epochs, $L$ the final
    validation loss, $A_c$, $L_c$ the `chance` level (default: `chance_level()`) and $L_0$ the
    loss before training (default $L_c$, which an untrained network is close to), the first
    that holds:

    1. "diverged": the run stopped on an inf or nan loss;
    2. "did not learn": $A < A_c + $ `LEARNED_MARGIN`$\,(1 - A_c)$ — no better than guessing,
       whatever the first epoch looked like;
    3. "learned, then lost it": $A^* - A \ge$ `LOST_ACCURACY`, or $L \ge L_0$ (the loss is
       back above the untrained network's);
    4. "learned little": $A < A_c + $ `LEARNED_WELL`$\,(1 - A_c)$;
    5. "learned".
    """
    chance = chance_level() if chance is None else chance
    reference = chance.loss if initial_loss is None else initial_loss
    if history.diverged or not history.val_losses:
        return "diverged", False
    loss, accuracy = history.val_losses[-1], history.val_accuracies[-1]
    if accuracy < chance.accuracy + LEARNED_MARGIN * (1 - chance.accuracy):
        return "did not learn", False
    if max(history.val_accuracies) - accuracy >= LOST_ACCURACY or not loss < reference:
        return "learned, then lost it", None
    if accuracy < chance.accuracy + LEARNED_WELL * (1 - chance.accuracy):
        return "learned little", None
    return "learned", True


def describe_run(history: History, lr: float, schedule: str, warmup: int, *,
                 chance: Chance | None = None, initial_loss: float | None = None) -> str:
    """One line: the setting of a precomputed run, the verdict of `judge_run` (whose docstring
    states the rule) and the numbers it rests on."""
    setting = f"lr {lr:.3g}, {schedule}" + (f", warm-up {warmup} steps" if warmup else "")
    verdict, _ = judge_run(history, chance, initial_loss)
    if verdict == "diverged":
        return f"{setting}: diverged (the loss became inf or nan)"
    chance = chance_level() if chance is None else chance
    last, accuracy = history.val_losses[-1], history.val_accuracies[-1]
    text = f"{setting}: {verdict}; validation loss {last:.3f}, accuracy {accuracy:.3f}"
    reference = chance.loss if initial_loss is None else initial_loss
    if verdict in ("did not learn", "learned little"):
        return text + (f" (chance: loss {chance.loss:.3f}, accuracy {chance.accuracy:.3f}; "
                       f"before training: loss {reference:.3f})")
    if verdict == "learned, then lost it":
        best = int(np.argmax(history.val_accuracies))
        return text + (f" (best accuracy {history.val_accuracies[best]:.3f} at epoch {best + 1};"
                       f" loss before training {reference:.3f})")
    return text


class TrainingRunExplorer(_Blitted):
    r"""Slide the learning rate, pick a schedule and a warm-up, and see the real training run.

    Every run comes from a `helpers.training.RunGrid` computed beforehand, so an update only looks
    a run up (the learning rate snaps to the nearest one of the grid) and redraws: the axes are
    fixed, kept as a bitmap, and only the lines are drawn over them. The status line is
    `describe_run`, judged by `judge_run` against chance and the loss before training: pass the
    grid's `data` (`(X_train, y_train, X_val, y_val)`) to take the chance level from its
    validation labels and the loss before training from the untrained `digits_mlp`; without it,
    both are those of 10 balanced classes ($\log 10$, 0.1).
    """

    def __init__(self, grid: RunGrid, lr: float = 0.1, schedule: str = "constant",
                 warmup: int = 0, *, data=None, dpi: int = 72):
        self.grid = grid
        self.chance, self.initial_loss = chance_level(), None
        if data is not None:  # the grid's data: chance from its validation labels
            X_val, y_val = data[2], data[3]
            self.chance = chance_level(y_val)
            with torch.random.fork_rng(devices=[]):  # digits_mlp seeds torch's global generator
                untrained = digits_mlp(0, dtype=X_val.dtype)
            self.initial_loss = evaluate(untrained, X_val, y_val)[0]
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
                                               label=plots.TRAINING_LINE)
        (self.val_line,) = self.loss_ax.plot([], [], "o-", color="C1", ms=3,
                                             label=plots.VALIDATION_LINE)
        (self.acc_line,) = self.acc_ax.plot([], [], "o-", color="C3", ms=3)
        # drawn once, into the kept background, above the panel: no run's lines ever cross it
        self.loss_ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2,
                            frameon=False, handlelength=1.5, columnspacing=1.0,
                            borderaxespad=0.2)
        # the verdict is in the status line: no title to draw at every update (text is slow)
        self._moving = [self.lr_line, self.train_line, self.val_line, self.acc_line]
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
        text = describe_run(history, lr, value["schedule"], warmup, chance=self.chance,
                            initial_loss=self.initial_loss)
        _, good = judge_run(history, self.chance, self.initial_loss)
        ends = plots.epoch_steps(history)
        self.lr_line.set_data(np.arange(len(history.lrs)), history.lrs)
        self.train_line.set_data(np.arange(len(history.step_losses)), history.step_losses)
        self.val_line.set_data(ends, history.val_losses)
        self.acc_line.set_data(ends, history.val_accuracies)
        color = outcome_color(good)
        self.status.value = f"<b style='color:{color}'>{text}</b>"
        self.image.value = self.render()
        return history

    @property
    def widget(self) -> widgets.Widget:
        return widgets.VBox([widgets.HBox(list(self.controls.values())), self.status, self.image])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------------------------
# Chapter 09: overfitting, and what L2, dropout and a smaller model do to it
# --------------------------------------------------------------------------------------------

OVERFIT_RISE = 0.10
"""A run overfits only if its final validation loss is this much (10%) above its minimum..."""
WIDE_GAP = 0.10
"""... and its final gap, validation minus training loss, is at least this many nats."""
UNDERFIT_LOSS = 0.30
"""A run underfits if its final training loss (eval mode, whole training set) is at least this."""


@dataclass(frozen=True)
class GapSummary:
    """How a run with `evaluate_train=True` ended: the numbers of the generalization gap.

    Losses are the last epoch's; `gap = final_val - final_train`; `rise` is how far the final
    validation loss is above its minimum, relative to it; `best_epoch` counts from 1, and
    `best_accuracy` is the validation accuracy at that epoch. `verdict` is one of "diverged",
    "underfits", "overfits", "fits, with a wide gap", "fits" (see
    `summarize_regularization_run`).
    """

    final_train: float
    final_val: float
    gap: float
    best_val: float
    best_epoch: int
    best_accuracy: float
    rise: float
    verdict: str


def summarize_regularization_run(history: History, *, rise: float = OVERFIT_RISE,
                                 wide_gap: float = WIDE_GAP,
                                 underfit_loss: float = UNDERFIT_LOSS) -> GapSummary:
    r"""The generalization gap of one run of `helpers.training.fit(..., evaluate_train=True)`.

    With $L_{tr}$ the final training loss (`history.train_eval_losses[-1]`), $L_{val}$ the final
    validation loss and $L^*_{val}$ its minimum over the epochs (first one on ties):

    $$\text{gap} = L_{val} - L_{tr}, \qquad \text{rise} = L_{val} / L^*_{val} - 1.$$

    The verdict is the first that holds:

    1. "diverged": the run stopped on an inf or nan loss (`history.diverged`);
    2. "underfits": $L_{tr} \ge$ `underfit_loss` (0.3 nats): the model does not even fit the
       training set;
    3. "overfits": rise $\ge$ `rise` (10%) **and** gap $\ge$ `wide_gap` (0.1 nats): the
       validation loss has turned up from its minimum while the training loss stayed below it;
    4. "fits, with a wide gap": gap $\ge$ `wide_gap`, but the validation loss is still within
       `rise` of its minimum;
    5. "fits": the gap is below `wide_gap`.

    The losses are rounded to 3 decimals first, as the readout prints them, and the gap is the
    difference of the rounded losses: the verdict is decided on the numbers the learner reads
    (`describe_regularization_run` prints the rise rounded down, so "10.0%" is never short of
    10%). A diverged run gets NaN numbers (and epoch 0) where it has no epoch to read them from.
    """
    train, val = history.train_eval_losses, history.val_losses
    if history.diverged and not (train and val):
        nan = float("nan")
        return GapSummary(nan, nan, nan, nan, 0, nan, nan, "diverged")
    if not train:
        raise ValueError("expected a History from fit(..., evaluate_train=True), with the "
                         "training set's loss after every epoch in train_eval_losses, but got "
                         "none")
    if len(train) != len(val) or len(history.val_accuracies) != len(val):
        raise ValueError(f"expected one training loss, validation loss and accuracy per epoch, "
                         f"but got {len(train)}, {len(val)} and {len(history.val_accuracies)}")
    best = int(np.argmin(val))
    final_train, final_val, best_val = (round(float(x), 3) for x in (train[-1], val[-1], val[best]))
    gap = round(final_val - final_train, 3)
    up = final_val / best_val - 1 if best_val > 0 else (math.inf if final_val > 0 else 0.0)
    if history.diverged:
        verdict = "diverged"
    elif final_train >= underfit_loss:
        verdict = "underfits"
    elif up >= rise and gap >= wide_gap:
        verdict = "overfits"
    elif gap >= wide_gap:
        verdict = "fits, with a wide gap"
    else:
        verdict = "fits"
    return GapSummary(final_train, final_val, gap, best_val, best + 1,
                      float(history.val_accuracies[best]), up, verdict)


def describe_regularization_run(history: History, remedy: str, value: float, *,
                                rise: float = OVERFIT_RISE, wide_gap: float = WIDE_GAP,
                                underfit_loss: float = UNDERFIT_LOSS) -> str:
    """One line: the setting, the verdict of `summarize_regularization_run` (whose docstring
    states the rule) with the number it rests on, then the final training and validation losses,
    the gap, and the best validation loss with its epoch and the accuracy there."""
    s = summarize_regularization_run(history, rise=rise, wide_gap=wide_gap,
                                     underfit_loss=underfit_loss)
    setting = f"{remedy} = {value:g}"
    if s.verdict == "diverged":
        return f"{setting}: diverged (the loss became inf or nan)"
    up = f"{math.floor(s.rise * 1000 + 1e-9) / 10:.1f}%" if math.isfinite(s.rise) else "inf"
    why = {"underfits": f"training loss {s.final_train:.3f} >= {underfit_loss:g}",
           "overfits": f"validation loss {up} above its minimum >= {rise:.0%}, gap >= "
                       f"{wide_gap:g}",
           "fits, with a wide gap": f"gap >= {wide_gap:g}, but validation loss only {up} above "
                                    f"its minimum < {rise:.0%}",
           "fits": f"gap < {wide_gap:g}"}[s.verdict]
    return (f"{setting}: {s.verdict} ({why}); training loss {s.final_train:.3f}, validation "
            f"loss {s.final_val:.3f}, gap {s.gap:.3f}; best validation loss {s.best_val:.3f} at "
            f"epoch {s.best_epoch}, accuracy {s.best_accuracy:.3f}")


def _setting_labels(values) -> list[tuple[str, float]]:
    labels = [f"{value:g}" for value in values]
    if len(set(labels)) < len(labels):
        labels = [repr(value) for value in values]
    return list(zip(labels, values, strict=True))


class RegularizationExplorer(_Blitted):
    """Pick a remedy (L2, dropout, the width, ...) and slide its setting: the precomputed run's
    training and validation loss against the epoch, with the remedy's other settings faint
    behind it.

    `runs` maps a remedy's name to `{setting: History}`, every run from
    `helpers.training.fit(..., evaluate_train=True)`. List each remedy's settings in the order the
    slider should take them, the baseline first (no regularization: λ = 0, p = 0, the widest
    model), so that moving right means a stronger remedy; the baseline is drawn dashed in grey.
    The picture marks the best validation epoch and writes the final gap (validation minus
    training loss) at the last epoch; the line below it is `describe_regularization_run`, whose
    verdict rule is stated in `summarize_regularization_run`. An update only looks the run up and
    draws the moving lines over a kept bitmap. Display it with `display(explorer)` or as the last
    expression of a cell.
    """

    def __init__(self, runs: dict[str, dict[float, History]], remedy: str | None = None,
                 value: float | None = None, *, dpi: int = 72):
        if not isinstance(runs, dict) or not runs:
            raise ValueError(f"expected runs as a non-empty dict {{remedy: {{setting: History}}}}"
                             f", but got {runs!r}")
        for name, settings in runs.items():
            if not isinstance(settings, dict) or not settings:
                raise ValueError(f"expected a non-empty dict {{setting: History}} for remedy "
                                 f"{name!r}, but got {settings!r}")
            for history in settings.values():
                summarize_regularization_run(history)  # raises on a run without training losses
        remedy = next(iter(runs)) if remedy is None else remedy
        if remedy not in runs:
            raise ValueError(f"expected a remedy among {list(runs)}, but got {remedy!r}")
        value = next(iter(runs[remedy])) if value is None else value
        if value not in runs[remedy]:
            raise ValueError(f"expected a setting of {remedy!r} among {list(runs[remedy])}, but "
                             f"got {value!r}")
        self.runs = runs
        self.controls = {
            "remedy": widgets.Dropdown(options=list(runs), value=remedy, description="remedy"),
            "value": widgets.SelectionSlider(options=_setting_labels(runs[remedy]), value=value,
                                             description=remedy, continuous_update=True,
                                             style={"description_width": "initial"},
                                             layout=widgets.Layout(width="420px")),
        }
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.figure = Figure(figsize=(7.5, 3.4), dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.1, right=0.97, bottom=0.15, top=0.9)
        self.ax = self.figure.subplots()
        every = [h for settings in runs.values() for h in settings.values()]
        losses = np.array([x for h in every for x in (*h.train_eval_losses, *h.val_losses)])
        losses = losses[np.isfinite(losses) & (losses > 0)]
        low, high = (losses.min(), losses.max()) if len(losses) else (1e-2, 10.0)
        epochs = max(len(h.val_losses) for h in every)
        self.ax.set(xlim=(0.5, max(epochs, 1) + 0.5), ylim=(max(low, 1e-6) / 1.5, high * 1.5),
                    yscale="log", xlabel="epoch", ylabel="cross-entropy")
        self.train_line, = self.ax.plot([], [], "o-", color="C0", ms=2.5, lw=1.8,
                                        label="training (eval mode)")
        self.val_line, = self.ax.plot([], [], "o-", color="C1", ms=2.5, lw=1.8,
                                      label="validation")
        self.best_marker, = self.ax.plot([], [], "*", color="C1", mec="black", ms=13,
                                         label="best validation epoch")
        self.best_text = self.ax.text(0, 0, "", fontsize=8, ha="center", va="top")
        self.gap_line, = self.ax.plot([], [], color="black", lw=2.5, alpha=0.6)
        self.gap_text = self.ax.text(0, 0, "", fontsize=9, ha="right", va="center",
                                     bbox=dict(facecolor="white", edgecolor="none", alpha=0.7,
                                               pad=1))
        self._moving = [self.train_line, self.val_line, self.best_marker, self.best_text,
                        self.gap_line, self.gap_text, self.ax.title]
        for artist in self._moving:
            artist.set_animated(True)
        self._faint = []
        self._background = None
        self._muted = False
        self._show_remedy()
        self.controls["remedy"].observe(self._remedy_changed, names="value")
        self.controls["value"].observe(self._value_changed, names="value")
        self.update()

    # the pure part ----------------------------------------------------------------------------

    def run(self) -> History:
        """The precomputed run the controls ask for (pure lookup)."""
        return self.runs[self.controls["remedy"].value][self.controls["value"].value]

    def frame(self) -> GapSummary:
        """The numbers and verdict behind the picture (`summarize_regularization_run`)."""
        return summarize_regularization_run(self.run())

    # the view ---------------------------------------------------------------------------------

    def update(self) -> GapSummary:
        """Look the run up, move the lines' data, re-render the same figure; returns the frame."""
        history, frame = self.run(), self.frame()
        remedy, value = self.controls["remedy"].value, self.controls["value"].value
        text = describe_regularization_run(history, remedy, value)
        train, val = history.train_eval_losses, history.val_losses
        self.train_line.set_data(np.arange(1, len(train) + 1), train)
        self.val_line.set_data(np.arange(1, len(val) + 1), val)
        if frame.best_epoch:
            last = len(val)
            best_val = val[frame.best_epoch - 1]  # exact, where the frame's is rounded
            self.best_marker.set_data([frame.best_epoch], [best_val])
            near_end = frame.best_epoch > last - max(3, last // 6)  # keep off the gap's text
            self.best_text.set(x=frame.best_epoch, y=best_val * (1.3 if near_end else 1 / 1.25),
                               va="bottom" if near_end else "top",
                               ha="right" if near_end else "center",
                               text=f"best {frame.best_val:.3f}\nepoch {frame.best_epoch}")
            self.gap_line.set_data([last, last], [train[-1], val[-1]])
            low = max(train[-1], 1e-6)
            narrow = val[-1] < 2 * low  # no room between the lines: write it under them
            self.gap_text.set(x=last - 0.3, y=low / 1.3 if narrow else math.sqrt(low * val[-1]),
                              va="top" if narrow else "center", text=f"gap {frame.gap:.3f}")
        else:
            for line in (self.best_marker, self.gap_line):
                line.set_data([], [])
            self.best_text.set_text("")
            self.gap_text.set_text("")
        good = frame.verdict == "fits"
        color = _GOOD if good else _BAD if frame.verdict in ("overfits", "underfits",
                                                             "diverged") else "#9a6700"
        self.ax.set_title(f"{remedy} = {value:g}: {frame.verdict}", fontsize=10, color=color)
        self.status.value = f"<b style='color:{color}'>{text}</b>"
        self.image.value = self.render()
        return frame

    @property
    def widget(self) -> widgets.Widget:
        controls = widgets.HBox([self.controls["remedy"], self.controls["value"]])
        return widgets.VBox([controls, self.status, self.image])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # reacting to the controls -------------------------------------------------------------------

    def _value_changed(self, change) -> None:
        if not self._muted:
            self.update()

    def _remedy_changed(self, change) -> None:
        """Re-populate the slider with the new remedy's settings (at its baseline), redraw the
        faint background, then the run."""
        slider, settings = self.controls["value"], self.runs[change["new"]]
        self._muted = True
        try:
            slider.options = _setting_labels(settings)
            slider.value = next(iter(settings))
            slider.description = change["new"]
        finally:
            self._muted = False
        self._show_remedy()
        self.update()

    def _show_remedy(self) -> None:
        """Every setting of the remedy, faint, behind the moving lines; the baseline dashed."""
        for artist in self._faint:
            artist.remove()
        remedy = self.controls["remedy"].value
        self._faint = []
        for index, (value, history) in enumerate(self.runs[remedy].items()):
            epochs = np.arange(1, len(history.val_losses) + 1)
            if index == 0:
                self._faint += self.ax.plot(epochs, history.train_eval_losses, ":", color="gray",
                                            lw=1.2)
                self._faint += self.ax.plot(epochs, history.val_losses, "--", color="gray",
                                            lw=1.2, label=f"baseline, {remedy} = {value:g}")
            else:
                self._faint += self.ax.plot(epochs, history.train_eval_losses, color="C0",
                                            alpha=0.18, lw=1)
                self._faint += self.ax.plot(epochs, history.val_losses, color="C1", alpha=0.18,
                                            lw=1, label="other settings" if index == 1 else None)
        self.ax.legend(fontsize=7, loc="lower left")
        self._background = None
