"""The threshold explorer and the figures of chapter 07: thin views over helpers.metrics."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import metrics as M  # noqa: E402
from helpers import plots  # noqa: E402
from helpers.widgets import ThresholdExplorer, describe_threshold  # noqa: E402


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


def test_the_explorer_shows_metrics_at_threshold_of_its_slider(scored):
    y_true, y_score = scored
    explorer = ThresholdExplorer(y_true, y_score, threshold=0.5)
    first_image = explorer.image.value
    for threshold in (0.3, 0.62, 0.9):
        explorer.slider.value = threshold
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
    assert explorer.slider.max > y_score.max()
    explorer.slider.value = explorer.slider.max
    assert float(explorer.frame().recall) == 0.0  # nothing predicted positive


def test_above_every_score_the_point_is_the_curves_end(scored):
    y_true, y_score = scored
    explorer = ThresholdExplorer(y_true, y_score, threshold=1.5)
    assert explorer.slider.max == 1.5
    report = explorer.frame()
    assert (float(report.recall), float(report.precision)) == (0.0, 1.0)
    precision, recall, _ = M.precision_recall_curve(y_true, y_score)
    assert (recall[-1], precision[-1]) == (0.0, 1.0)


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
