"""Figures of the course, drawn with matplotlib (the only module besides `widgets` that imports it).

Every function takes `ax=None` (or `axes=None`) and returns `(fig, ax)`: it draws into the axes
it is given, or into a new figure. Functions only draw; what they show is computed elsewhere.
"""

from __future__ import annotations

import io
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from helpers.surfaces import Surface, Trajectory, explore, grid


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


# --------------------------------------------------------------------------------------------
# Optimizers on 2-D surfaces (chapters 03-05)
# --------------------------------------------------------------------------------------------


LOSS_FLOOR = 1e-16
"""The smallest f - f* that loss plots show: below it, float64 rounding is all there is."""


def surface_levels(values, surface: Surface, count: int = 14) -> np.ndarray:
    """Contour levels spaced evenly in log(f - f*), so that both the valley and the walls show."""
    gap = np.asarray(values) - surface.minimum_value
    high = np.quantile(gap, 0.95)
    low = max(high * 1e-4, np.min(gap[gap > 0])) if (gap > 0).any() else 1e-3
    return surface.minimum_value + np.geomspace(low, high, count)


def plot_surface(surface: Surface, ax=None, *, resolution: int = 80, levels: int = 14):
    """Contour lines of `surface` over its `xlim` x `ylim`, its minima marked with stars."""
    fig, ax = _axes(ax, (4.5, 3.5))
    X, Y, Z = (t.numpy() for t in grid(surface, resolution))
    ax.contour(X, Y, Z, levels=surface_levels(Z, surface, levels), cmap="viridis",
               linewidths=0.8, alpha=0.7)
    minima = np.array(surface.minima)
    ax.plot(minima[:, 0], minima[:, 1], "*", color="black", markersize=10, label="minimum")
    ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y")
    ax.autoscale(False)
    return fig, ax


def plot_path(trajectory: Trajectory, ax=None, *, label: str | None = None, color=None):
    """The optimizer's path: a line through every iterate, the start marked with a circle."""
    fig, ax = _axes(ax, (4.5, 3.5))
    points = trajectory.points.numpy()
    (line,) = ax.plot(points[:, 0], points[:, 1], ".-", color=color, label=label,
                      markersize=3, linewidth=1.2)
    ax.plot(points[0, 0], points[0, 1], "o", color=line.get_color(), markersize=6)
    return fig, ax


def plot_losses(trajectories: dict[str, Trajectory], surface: Surface, ax=None):
    r"""$f(\theta_t) - f^*$ against the step, on a log scale, one line per run.

    Gaps below `LOSS_FLOOR` (float64 rounding, or exactly 0) are drawn at the floor.
    """
    fig, ax = _axes(ax, (4.5, 3.5))
    for label, trajectory in trajectories.items():
        gap = (trajectory.losses - surface.minimum_value).numpy()
        ax.semilogy(np.arange(len(gap)), np.maximum(gap, LOSS_FLOOR), label=label)
    ax.set(xlabel="step", ylabel="f - f*")
    return fig, ax


OUTCOME_COLORS = {True: "#1a7f37", None: "#9a6700", False: "#cf222e"}
"""The colour of a verdict by `Outcome.good`: green (reached the minimum, decreasing), amber
(hovering, stalled at a saddle point), red (grew, diverged); the explorers use the same."""


def plot_small_multiples(surface: Surface, runs: dict[str, dict], *, steps: int = 50,
                         axes=None):
    """One column per run: its path on the surface above, its loss below, the outcome as title
    (`helpers.surfaces.assess`'s verdict in short, coloured as in the explorer).

    `runs` maps a caption ("too small", "momentum 0.9", ...) to the keyword arguments of
    `helpers.surfaces.explore` (`optimizer`, `lr` and the optimizer's options).
    """
    if axes is None:
        fig, axes = plt.subplots(2, len(runs), figsize=(3.0 * len(runs), 5.2),
                                 layout="constrained", squeeze=False,
                                 gridspec_kw={"height_ratios": [3, 2]})
    fig = axes[0, 0].figure
    for column, (caption, settings) in enumerate(runs.items()):
        frame = explore(surface, steps=steps, **settings)
        plot_surface(surface, axes[0, column])
        plot_path(frame.trajectory, axes[0, column], color="C3")
        axes[0, column].set_title(f"{caption}\nlr = {frame.lr:.3g}: {frame.outcome.short}",
                                  fontsize=9, color=OUTCOME_COLORS[frame.outcome.good])
        plot_losses({caption: frame.trajectory}, surface, axes[1, column])
        axes[1, column].set_xlim(0, steps)
    return fig, axes


def plot_learning_rates(surface: Surface, optimizer: str, lrs: dict[str, float], *,
                        steps: int = 50, axes=None, **options):
    """Small multiples over the learning rate: `lrs` maps a caption ("too small", ...) to a rate.

    The other settings (`options`) are the same in every column; see `plot_small_multiples`.
    """
    runs = {caption: dict(optimizer=optimizer, lr=lr, **options) for caption, lr in lrs.items()}
    fig, axes = plot_small_multiples(surface, runs, steps=steps, axes=axes)
    fig.suptitle(f"{optimizer} on the {surface.name}", fontsize=10)
    return fig, axes


def plot_optimizer_comparison(surface: Surface, runs: dict[str, Trajectory], *, axes=None):
    """Several runs on one surface: the paths on its contours, and their losses side by side.

    The legend is on the loss plot, where it hides nothing; the colours match.
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    fig = axes[0].figure
    plot_surface(surface, axes[0])
    for index, (label, trajectory) in enumerate(runs.items()):
        plot_path(trajectory, axes[0], label=label, color=f"C{index}")
    plot_losses(runs, surface, axes[1])
    axes[1].legend(fontsize=8, loc="best")
    axes[0].set_title(surface.name, fontsize=10)
    return fig, axes


# --------------------------------------------------------------------------------------------
# Classification metrics (chapter 07)
# --------------------------------------------------------------------------------------------


def _numpy(x) -> np.ndarray:
    return np.asarray(x.cpu() if hasattr(x, "cpu") else x)


def plot_confusion_matrix(matrix, ax=None, *, labels=None, cmap: str = "Blues"):
    """The confusion matrix as a heat map with its entries written in: rows true, columns predicted.

    `labels` names the classes along both axes (default 0 .. K-1).
    """
    fig, ax = _axes(ax, (3.2, 3.0))
    values = _numpy(matrix)
    labels = list(range(len(values))) if labels is None else list(labels)
    ax.imshow(values, cmap=cmap, vmin=0, vmax=max(values.max(), 1e-12))
    for (i, j), _ in np.ndenumerate(values):
        ax.text(j, i, "", ha="center", va="center", fontsize=10)
    set_confusion_matrix(ax, matrix)
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels,
           yticklabels=labels, xlabel="predicted", ylabel="true")
    return fig, ax


def set_confusion_matrix(ax, matrix):
    """Show new counts in the axes of `plot_confusion_matrix` (same size): the heat map's data
    and colour scale, and the numbers written in (white on the darker cells). Returns `ax`."""
    values = _numpy(matrix)
    image = ax.images[-1]  # the latest matrix drawn in these axes, and its numbers
    image.set_data(values)
    image.set_clim(0, max(values.max(), 1e-12))
    integral = np.issubdtype(values.dtype, np.integer)
    for text, value in zip(ax.texts[-values.size:], values.flat, strict=True):
        dark = value > 0.6 * values.max()
        text.set_text(f"{value:d}" if integral else f"{value:.2f}")
        text.set_color("white" if dark else "black")
    return ax


def plot_precision_recall_curve(precision, recall, ax=None, *, point=None, label=None):
    """Precision against recall as the step function average precision integrates.

    `point`, a (recall, precision) pair, is marked: the operating point of one threshold.
    """
    fig, ax = _axes(ax, (3.6, 3.0))
    recall, precision = _numpy(recall), _numpy(precision)
    ax.plot(recall, precision, drawstyle="steps-post", color="C0", label=label)
    if point is not None:
        ax.plot(*point, "o", color="C3", markersize=8)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.05), xlabel="recall", ylabel="precision")
    return fig, ax


def plot_threshold_panels(precision, recall, reports, *, axes=None):
    """Small multiples, one column per threshold: the confusion matrix [[TN, FP], [FN, TP]] above,
    its point on the precision-recall curve below.

    `reports` are `helpers.metrics.ThresholdMetrics` (from `metrics_at_threshold`).
    """
    if axes is None:
        fig, axes = plt.subplots(2, len(reports), figsize=(2.6 * len(reports), 5.2),
                                 layout="constrained", squeeze=False)
    fig = axes[0, 0].figure
    for column, report in enumerate(reports):
        plot_confusion_matrix(report.confusion_matrix, axes[0, column],
                              labels=["neg", "pos"])
        axes[0, column].set_title(f"threshold {report.threshold:.2f}", fontsize=10)
        plot_precision_recall_curve(precision, recall, axes[1, column],
                                    point=(float(report.recall), float(report.precision)))
        axes[1, column].set_title(f"P {float(report.precision):.2f}, "
                                  f"R {float(report.recall):.2f}", fontsize=9)
    return fig, axes


def plot_roc_curve(fpr, tpr, ax=None, *, label=None, point=None):
    """The ROC curve, true-positive rate against false-positive rate, with the diagonal of a
    scorer that guesses (area 0.5). `point`, an (fpr, tpr) pair, is marked."""
    fig, ax = _axes(ax, (3.4, 3.2))
    ax.plot([0, 1], [0, 1], ":", color="0.6", linewidth=1)
    ax.plot(_numpy(fpr), _numpy(tpr), label=label)
    if point is not None:
        ax.plot(*point, "o", color="C3", markersize=7)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="false-positive rate",
           ylabel="true-positive rate", aspect="equal")
    return fig, ax


def plot_reliability_diagram(prob_true, prob_pred, ax=None, *, label=None, marker="o"):
    """A reliability diagram: in each bin of predicted probability, the share of positives
    (`prob_true`) against the mean prediction (`prob_pred`), both from `calibration_curve`.
    A calibrated model lies on the diagonal. Below it the model predicts more positives than
    there are (it over-predicts the positive class), above it fewer; a point away from the
    diagonal is over-confident when it lies on the far side from 0.5 (below the diagonal where the
    prediction is above 0.5, above it where the prediction is below 0.5)."""
    fig, ax = _axes(ax, (3.4, 3.2))
    if not ax.lines:
        ax.plot([0, 1], [0, 1], ":", color="0.6", linewidth=1, label="calibrated")
    ax.plot(_numpy(prob_pred), _numpy(prob_true), marker=marker, markersize=4, label=label)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="mean predicted probability",
           ylabel="share of positives", aspect="equal")
    return fig, ax


# --------------------------------------------------------------------------------------------
# Training runs under a learning-rate setting (chapter 06)
# --------------------------------------------------------------------------------------------


def epoch_steps(history) -> np.ndarray:
    """The step count at the end of each epoch of a `helpers.training.History`."""
    per_epoch = len(history.lrs) // max(len(history.val_losses), 1)
    return per_epoch * np.arange(1, len(history.val_losses) + 1)


def plot_training_run(history, axes=None, *, title: str | None = None):
    """Learning rate per step, losses (training per step, validation per epoch), and
    validation accuracy per epoch of one run, on three axes; returns `(fig, axes)`."""
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 2.8), layout="constrained")
    lr_ax, loss_ax, acc_ax = axes
    lr_ax.plot(history.lrs, color="C2")
    lr_ax.set(xlabel="step", ylabel="learning rate", yscale="log")
    loss_ax.plot(history.step_losses, color="C0", alpha=0.5, lw=0.8, label=TRAINING_LINE)
    loss_ax.plot(epoch_steps(history), history.val_losses, "o-", color="C1", ms=3,
                 label=VALIDATION_LINE)
    loss_ax.set(xlabel="step", ylabel="cross-entropy", yscale="log")
    loss_ax.legend(fontsize=8)
    acc_ax.plot(epoch_steps(history), history.val_accuracies, "o-", color="C3", ms=3)
    acc_ax.set(xlabel="step", ylabel="validation accuracy", ylim=(0, 1))
    if title:
        loss_ax.set_title(title, fontsize=10)
    return axes[0].figure, axes


TRAINING_LINE = "training (each step)"
"""The label of the training loss, one point per optimizer step (a minibatch's loss)."""
VALIDATION_LINE = "validation (each epoch)"
"""The label of the validation loss, one point at the end of each epoch."""


def plot_run_small_multiples(runs: dict, axes=None):
    """One column per labelled run: losses on top, validation accuracy below.

    The loss lines are labelled `TRAINING_LINE` and `VALIDATION_LINE`, so that a legend can be
    asked of any panel (`axes[0][0].legend()`). Returns `(fig, axes)`, axes of shape (2, runs).
    """
    if axes is None:
        fig, axes = plt.subplots(2, len(runs), figsize=(2.6 * len(runs), 4.2), sharey="row",
                                 layout="constrained", squeeze=False)
    for column, (label, history) in enumerate(runs.items()):
        loss_ax, acc_ax = axes[0][column], axes[1][column]
        loss_ax.plot(history.step_losses, color="C0", alpha=0.5, lw=0.8, label=TRAINING_LINE)
        loss_ax.plot(epoch_steps(history), history.val_losses, "o-", color="C1", ms=3,
                     label=VALIDATION_LINE)
        loss_ax.set(yscale="log", title=label)
        acc_ax.plot(epoch_steps(history), history.val_accuracies, "o-", color="C3", ms=3)
        acc_ax.set(ylim=(0, 1), xlabel="step")
        final = history.val_accuracies[-1] if history.val_accuracies else float("nan")
        acc_ax.text(0.95, 0.05, f"final {final:.2f}", transform=acc_ax.transAxes, ha="right")
    axes[0][0].set_ylabel("loss (train, validation)")
    axes[1][0].set_ylabel("validation accuracy")
    return axes[0][0].figure, axes


# --------------------------------------------------------------------------------------------
# Overfitting and its remedies (chapter 09)
# --------------------------------------------------------------------------------------------


def plot_regularization_small_multiples(runs: dict, axes=None):
    """One row per remedy, one column per setting: training (eval mode) and validation loss
    against the epoch, on a log scale shared by every panel.

    `runs` maps a remedy's name to `{setting: History}`, each run from
    `helpers.training.fit(..., evaluate_train=True)`, the baseline first. Each panel marks the
    best validation epoch with a star and writes the final gap (validation minus training loss);
    the baseline's validation loss is drawn dashed in grey behind the row's other panels; the
    legend sits above the panels. Rows with fewer settings leave their last panels hidden.
    Returns `(fig, axes)`, axes of shape (remedies, most settings).
    """
    columns = max(len(settings) for settings in runs.values())
    if axes is None:
        fig, axes = plt.subplots(len(runs), columns, figsize=(2.5 * columns, 2.1 * len(runs)),
                                 sharey=True, layout="constrained", squeeze=False)
    axes = np.asarray(axes, dtype=object).reshape(len(runs), -1)
    for row, (remedy, settings) in enumerate(runs.items()):
        baseline = next(iter(settings.values()))
        for column, (value, history) in enumerate(settings.items()):
            ax = axes[row, column]
            train, val = history.train_eval_losses, history.val_losses
            epochs = np.arange(1, len(val) + 1)
            if column > 0:
                ax.plot(np.arange(1, len(baseline.val_losses) + 1), baseline.val_losses, "--",
                        color="gray", lw=1, label="baseline validation")
            ax.plot(epochs[:len(train)], train, color="C0", label="training")
            ax.plot(epochs, val, color="C1", label="validation")
            if len(val):
                best = int(np.argmin(val))
                ax.plot(best + 1, val[best], "*", color="C1", mec="black", ms=10)
            if len(val) and len(train) == len(val):
                ax.text(0.97, 0.95, f"gap {val[-1] - train[-1]:.2f}", transform=ax.transAxes,
                        ha="right", va="top", fontsize=8,
                        bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
            ax.set_yscale("log")
            ax.set_title(f"{remedy} = {value:g}", fontsize=9)
            if row == len(runs) - 1 or column >= len(runs[list(runs)[row + 1]]):
                ax.set_xlabel("epoch")
        for column in range(len(settings), axes.shape[1]):
            axes[row, column].set_visible(False)
        axes[row, 0].set_ylabel("cross-entropy")
    first_row = len(next(iter(runs.values())))
    handles, labels = axes[0, 1 if first_row > 1 else 0].get_legend_handles_labels()
    axes[0, 0].figure.legend(handles, labels, loc="outside upper center", ncols=3, fontsize=8)
    return axes[0, 0].figure, axes


# --------------------------------------------------------------------------------------------
# Efficient optimization (chapter 11)
# --------------------------------------------------------------------------------------------


def plot_roofline(bandwidth: float, peak_flops: float, points: dict[str, tuple[float, float]],
                  ax=None):
    r"""The roofline $P(I) = \min(P_{\text{peak}}, I\beta)$ in FLOP/s against the arithmetic
    intensity $I$ (FLOP per byte), and a marker per kernel: `points[name] = (I, FLOP/s)`.

    `bandwidth` $\beta$ in bytes/s and `peak_flops` in FLOP/s are measured; the ridge point
    $I^* = P_{\text{peak}}/\beta$ separates memory-bound kernels (left) from compute-bound ones.
    """
    fig, ax = _axes(ax, (6.4, 3.8))
    ridge = peak_flops / bandwidth
    intensities = [i for i, _ in points.values()]
    grid = np.geomspace(min(min(intensities), ridge) / 4, max(max(intensities), ridge) * 8, 200)
    ax.plot(grid, np.minimum(peak_flops, grid * bandwidth), "k-", lw=1.5, label="roofline")
    ax.axvline(ridge, color="0.6", ls=":", lw=1)
    ax.annotate(f"ridge {ridge:.1f} FLOP/B", (ridge, peak_flops), textcoords="offset points",
                xytext=(4, -12), fontsize=8, color="0.4")
    # markers shrink one step each, so that kernels at the same point stay visible
    for index, (name, (intensity, flops)) in enumerate(points.items()):
        ax.plot(intensity, flops, "osD^v<>pX*"[index % 10], ms=max(10 - index, 4), label=name)
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP per byte moved)",
           ylabel="FLOP/s")
    ax.legend(fontsize=7, loc="lower right")
    return fig, ax


# --------------------------------------------------------------------------------------------
# Figures sharp on a projector
# --------------------------------------------------------------------------------------------

SHARPNESS = 2
"""Pixels drawn per pixel shown: a figure shown 600 pixels wide is drawn 1200 wide ("retina")."""


def sharp_png(fig: Figure, scale: int = SHARPNESS) -> tuple[bytes, dict]:
    """`fig` as a PNG drawn at `scale` × its dpi and shown at its usual size, with metadata.

    The figure is drawn at $\text{scale} \times$ `fig.dpi` pixels per inch (at least 144 for the
    course's 72-dpi figures), so text and lines stay sharp on a projector or a high-density
    screen; `width` / `height` say the size to show it at. Its colours become a 256-colour
    palette: lines, text and contours use far fewer, so nothing visible changes, and the file is
    smaller than the full-colour one at 1× would be.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=scale * fig.dpi, bbox_inches="tight")
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    sharp = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(sharp, format="png", optimize=True)
    width, height = image.size
    return sharp.getvalue(), {"width": width // scale, "height": height // scale}


def show_sharp_figures(scale: int = SHARPNESS) -> None:
    """Show every matplotlib figure of this IPython session as `sharp_png` (no-op outside one).

    The inline backend installs its own PNG formatter when it loads: this loads it first, then
    replaces that formatter.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        # load the backend now: loading it (at the first figure otherwise) installs its formatter
        plt.switch_backend(plt.get_backend())
        shell.display_formatter.formatters["image/png"].for_type(Figure,
                                                                 partial(sharp_png, scale=scale))
