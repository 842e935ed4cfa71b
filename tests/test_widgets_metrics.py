"""The threshold explorer and the figures of chapter 07: thin views over helpers.metrics."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn import metrics as sk  # noqa: E402

from helpers import metrics as M  # noqa: E402
from helpers import plots  # noqa: E402
from helpers.widgets import (  # noqa: E402
    ThresholdExplorer,
    describe_threshold,
    format_threshold,
)


@pytest.fixture
def scored():
    generator = torch.Generator().manual_seed(3)
    y_true = (torch.rand(120, generator=generator) < 0.3).long()
    logit = 2 * y_true - 1 + torch.randn(120, generator=generator, dtype=torch.float64)
    return y_true, torch.sigmoid(logit)


def test_describe_threshold_reads_the_counts_in_sklearn_order():
    y_true, y_score = torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0.1, 0.7, 0.2, 0.8, 0.9])
    report = M.metrics_at_threshold(y_true, y_score, 0.5)
    assert report.confusion_matrix.tolist() == [[1, 1], [1, 2]]  # [[TN, FP], [FN, TP]]
    assert describe_threshold(report) == (
        "threshold 0.500: TP 2, FP 1, FN 1, TN 1; precision 0.667, recall 0.667, F1 0.667")


def test_the_explorer_shows_metrics_at_threshold_of_its_box(scored):
    y_true, y_score = scored
    explorer = ThresholdExplorer(y_true, y_score, threshold=0.5)
    first_image = explorer.image.value
    for threshold in (0.3, 0.62, 0.9):
        explorer.box.value = threshold
        expected = M.metrics_at_threshold(y_true, y_score, threshold, zero_division=1.0)
        assert explorer.status.value == describe_threshold(expected)
        assert explorer.point.get_data() == ([float(expected.recall)],
                                             [float(expected.precision)])
        shown = [int(text.get_text()) for text in explorer.matrix_ax.texts]
        assert shown == expected.confusion_matrix.flatten().tolist()
    assert explorer.image.value[:4] == b"\x89PNG" and explorer.image.value != first_image


def test_the_slider_reaches_past_the_highest_score(scored):
    y_true, y_score = scored
    explorer = ThresholdExplorer(y_true, y_score, threshold=0.5)
    assert explorer.slider.options[-1][1] > y_score.max()
    explorer.slider.value = explorer.slider.options[-1][1]
    assert float(explorer.frame().recall) == 0.0  # nothing predicted positive


def test_above_every_score_the_point_is_the_curves_end(scored):
    y_true, y_score = scored
    explorer = ThresholdExplorer(y_true, y_score, threshold=1.5)
    assert explorer.box.value == 1.5
    report = explorer.frame()
    assert (float(report.recall), float(report.precision)) == (0.0, 1.0)
    precision, recall, _ = M.precision_recall_curve(y_true, y_score)
    assert (recall[-1], precision[-1]) == (0.0, 1.0)


@pytest.fixture
def saturated():
    """A confident model: most positives score above 0.99, as in chapter 07."""
    generator = torch.Generator().manual_seed(7)
    y_true = (torch.rand(140, generator=generator) < 0.4).long()
    logit = 9 * (2 * y_true - 1) + 3 * torch.randn(140, generator=generator, dtype=torch.float64)
    return y_true, torch.sigmoid(logit)


def test_every_step_of_the_slider_is_a_new_operating_point_on_saturated_scores(saturated):
    y_true, y_score = saturated
    assert (y_score[y_true == 1] > 0.99).float().mean() > 0.7
    explorer = ThresholdExplorer(y_true, y_score, threshold=0.5)
    distinct = torch.unique(y_score)
    stops = [value for _, value in explorer.slider.options]
    assert len(stops) == len(distinct) + 1  # every operating point there is, and "none"
    seen = []
    for stop in stops:
        explorer.slider.value = stop
        report = explorer.frame()
        predicted = (y_score >= stop).long()
        expected = sk.confusion_matrix(y_true.numpy(), predicted.numpy(), labels=[0, 1])
        assert report.confusion_matrix.tolist() == expected.tolist()
        assert float(report.threshold) == stop == explorer.box.value
        seen.append(tuple(expected.flatten()))
    assert len(set(seen)) == len(seen)  # each step moves the point


def test_a_typed_threshold_gives_the_metrics_of_score_at_least_threshold(saturated):
    y_true, y_score = saturated
    explorer = ThresholdExplorer(y_true, y_score, threshold=0.5)
    for threshold in (0.3, 0.62, 0.9991, 0.999999):
        explorer.box.value = threshold
        report = explorer.frame()
        predicted = (y_score >= threshold).long().numpy()
        assert float(report.precision) == pytest.approx(
            sk.precision_score(y_true.numpy(), predicted, zero_division=1.0), abs=1e-12)
        assert float(report.recall) == pytest.approx(
            sk.recall_score(y_true.numpy(), predicted), abs=1e-12)
        # the slider stops where the predictions are the same
        assert ((y_score >= explorer.slider.value) == (y_score >= threshold)).all()
        assert explorer.status.value == describe_threshold(report)


def test_thresholds_near_1_are_not_rounded_to_1():
    assert format_threshold(0.5) == "0.500" and format_threshold(0.99996625) == "0.999966"
    assert format_threshold(2.5e-6) == "2.5e-06"
    y_true, y_score = torch.tensor([0, 1, 1]), torch.tensor([0.2, 0.9999, 0.99999])
    report = M.metrics_at_threshold(y_true, y_score, 0.99999)
    assert describe_threshold(report).startswith("threshold 0.99999: TP 1, FP 0, FN 1")
    explorer = ThresholdExplorer(y_true, y_score)
    labels = [label for label, _ in explorer.slider.options]
    assert len(set(labels)) == len(labels) == 4


def test_the_figure_is_redrawn_in_place(scored):
    y_true, y_score = scored
    open_figures = plt.get_fignums()
    explorer = ThresholdExplorer(y_true, y_score, threshold=0.5)
    figure, image = explorer.figure, explorer.matrix_ax.images[0]
    explorer.box.value = 0.8
    assert explorer.figure is figure and explorer.matrix_ax.images[0] is image
    expected = M.metrics_at_threshold(y_true, y_score, 0.8).confusion_matrix
    assert image.get_array().tolist() == expected.tolist()
    assert plt.get_fignums() == open_figures  # never a pyplot figure


def test_plot_functions_draw_into_the_axes_they_are_given(scored):
    y_true, y_score = scored
    precision, recall, _ = M.precision_recall_curve(y_true, y_score)
    fig, ax = plt.subplots()
    assert plots.plot_confusion_matrix(torch.tensor([[5, 1], [2, 7]]), ax) == (fig, ax)
    assert [t.get_text() for t in ax.texts] == ["5", "1", "2", "7"]
    normalized = M.confusion_matrix(y_true, (y_score >= 0.5).long(), normalize="true")
    _, ax = plots.plot_confusion_matrix(normalized)
    assert all(len(t.get_text()) == 4 for t in ax.texts)  # "0.83"
    assert plots.plot_precision_recall_curve(precision, recall, ax, point=(0.5, 0.8)) == (
        ax.figure, ax)
    new_fig, new_ax = plots.plot_precision_recall_curve(precision, recall)
    assert new_ax.lines[0].get_drawstyle() == "steps-post"
    plt.close("all")


def test_threshold_panels_are_one_column_per_threshold(scored):
    y_true, y_score = scored
    precision, recall, _ = M.precision_recall_curve(y_true, y_score)
    reports = [M.metrics_at_threshold(y_true, y_score, t) for t in (0.3, 0.5, 0.7)]
    fig, axes = plots.plot_threshold_panels(precision, recall, reports)
    assert axes.shape == (2, 3)
    assert [a.get_title() for a in axes[0]] == [
        "threshold 0.30", "threshold 0.50", "threshold 0.70"]
    marked = axes[1, 1].lines[-1].get_data()
    assert marked == ([float(reports[1].recall)], [float(reports[1].precision)])
    plt.close(fig)
