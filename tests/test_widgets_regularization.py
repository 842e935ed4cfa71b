"""Chapter 09's explorer: the verdict on a run's generalization gap, and the view that looks
precomputed runs up and redraws in place."""

import statistics
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.data import digits  # noqa: E402
from helpers.training import History, fit  # noqa: E402
from helpers.widgets import (  # noqa: E402
    RegularizationExplorer,
    describe_regularization_run,
    summarize_regularization_run,
)


def history(train, val, accuracies=None, diverged=False):
    accuracies = [0.5 + 0.01 * epoch for epoch in range(len(val))] if accuracies is None \
        else accuracies
    return History(train_eval_losses=list(train), val_losses=list(val),
                   val_accuracies=list(accuracies), diverged=diverged)


OVERFITS = history([1.0, 0.2, 0.01], [1.1, 0.4, 0.6])  # up 50 % from 0.4, gap 0.59
UNDERFITS = history([2.0, 1.5, 1.2], [2.1, 1.6, 1.4])
WIDE_GAP = history([1.0, 0.2, 0.01], [1.1, 0.4, 0.42])  # up 5 %, gap 0.41
FITS = history([1.0, 0.3, 0.2], [1.1, 0.31, 0.25])


def synthetic_runs():
    return {"L2 weight decay λ": {0.0: OVERFITS, 1e-3: WIDE_GAP, 1e-2: FITS, 1.0: UNDERFITS},
            "dropout p": {0.0: OVERFITS, 0.5: FITS}}


# --------------------------------------------------------------------------------------------
# The pure part: numbers and verdict
# --------------------------------------------------------------------------------------------


def test_the_readout_gives_the_numbers_and_the_verdict():
    text = describe_regularization_run(OVERFITS, "L2 weight decay λ", 0.0)
    assert text == ("L2 weight decay λ = 0: overfits (validation loss 50.0% above its minimum "
                    ">= 10%, gap >= 0.1); training loss 0.010, validation loss 0.600, gap 0.590; "
                    "best validation loss 0.400 at epoch 2, accuracy 0.510")
    s = summarize_regularization_run(OVERFITS)
    assert (s.final_train, s.final_val, s.gap, s.best_val, s.best_epoch, s.best_accuracy) == (
        0.01, 0.6, 0.59, 0.4, 2, 0.51)
    assert s.rise == pytest.approx(0.5)


@pytest.mark.parametrize("run, verdict, why", [
    (OVERFITS, "overfits", "validation loss 50.0% above its minimum >= 10%, gap >= 0.1"),
    (UNDERFITS, "underfits", "training loss 1.200 >= 0.3"),
    (WIDE_GAP, "fits, with a wide gap",
     "gap >= 0.1, but validation loss only 5.0% above its minimum < 10%"),
    (FITS, "fits", "gap < 0.1"),
    # underfitting comes first, even where the validation loss rises too
    (history([2.0, 0.5], [1.0, 1.2]), "underfits", "training loss 0.500 >= 0.3"),
    # a validation loss that rises without a wide gap is not called overfitting
    (history([1.0, 0.2], [0.2, 0.25]), "fits", "gap < 0.1"),
])
def test_verdicts(run, verdict, why):
    assert summarize_regularization_run(run).verdict == verdict
    assert f": {verdict} ({why}); " in describe_regularization_run(run, "p", 0.5)


@pytest.mark.parametrize("train, val, verdict", [
    ([0.3], [0.35], "underfits"),  # exactly the underfitting loss
    ([0.2999], [0.35], "underfits"),  # printed 0.300: decided on the number the learner reads
    ([0.2994], [0.35], "fits"),  # printed 0.299
    ([0.5, 0.2], [0.3, 0.33], "overfits"),  # 10% above the minimum, gap 0.13
    ([0.5, 0.2], [0.3, 0.329], "fits, with a wide gap"),  # 9.7 %
    ([0.5, 0.2], [0.2, 0.3], "overfits"),  # gap exactly 0.1
    ([0.5, 0.2], [0.2, 0.2999], "overfits"),  # printed 0.300: gap 0.100
    ([0.5, 0.2], [0.2, 0.2994], "fits"),  # gap 0.099
])
def test_the_margins_are_inclusive_and_read_off_the_printed_numbers(train, val, verdict):
    run = history(train, val)
    assert summarize_regularization_run(run).verdict == verdict
    text = describe_regularization_run(run, "p", 0.5)
    if verdict == "overfits":
        rise = float(text.split("validation loss ")[1].split("%")[0])
        assert rise >= 10.0  # never printed short of the margin
    if verdict == "fits, with a wide gap":
        assert "only 9.6% above" in text  # rounded down


def test_other_margins_can_be_asked_for():
    assert summarize_regularization_run(WIDE_GAP, rise=0.04).verdict == "overfits"
    assert summarize_regularization_run(FITS, wide_gap=0.01).verdict == "fits, with a wide gap"
    assert summarize_regularization_run(FITS, underfit_loss=0.1).verdict == "underfits"
    assert "gap >= 0.01" in describe_regularization_run(FITS, "p", 0.5, wide_gap=0.01)


def test_diverged_runs():
    run = History(diverged=True)
    assert summarize_regularization_run(run).verdict == "diverged"
    assert describe_regularization_run(run, "L2 weight decay λ", 10.0) == (
        "L2 weight decay λ = 10: diverged (the loss became inf or nan)")


def test_a_run_without_training_losses_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"evaluate_train=True"):
        summarize_regularization_run(History(val_losses=[1.0], val_accuracies=[0.5]))
    with pytest.raises(ValueError, match="one training loss, validation loss and accuracy per "
                                         "epoch, but got 2, 1 and 1"):
        summarize_regularization_run(history([1.0, 0.5], [1.0], [0.5]))


# --------------------------------------------------------------------------------------------
# The view
# --------------------------------------------------------------------------------------------


def test_the_slider_holds_the_settings_of_the_chosen_remedy():
    runs = synthetic_runs()
    explorer = RegularizationExplorer(runs)
    slider = explorer.controls["value"]
    assert explorer.controls["remedy"].options == ("L2 weight decay λ", "dropout p")
    assert slider.options == (("0", 0.0), ("0.001", 1e-3), ("0.01", 1e-2), ("1", 1.0))
    assert slider.value == 0.0 and slider.index == 0  # the baseline: the slider can move right
    assert slider.description == "L2 weight decay λ"
    explorer.controls["remedy"].value = "dropout p"
    assert slider.options == (("0", 0.0), ("0.5", 0.5)) and slider.value == 0.0
    assert slider.description == "dropout p" and explorer.run() is OVERFITS
    slider.value = 0.5
    assert explorer.run() is FITS and explorer.frame().verdict == "fits"
    explorer = RegularizationExplorer(runs, "L2 weight decay λ", 1e-2)
    assert explorer.run() is FITS


def test_the_view_shows_the_run_the_controls_ask_for():
    runs = synthetic_runs()
    explorer = RegularizationExplorer(runs)
    figure, val_line, first_image = explorer.figure, explorer.val_line, explorer.image.value
    explorer.controls["value"].value = 1.0
    assert explorer.figure is figure and explorer.val_line is val_line  # redrawn in place
    np.testing.assert_array_equal(explorer.train_line.get_ydata(), UNDERFITS.train_eval_losses)
    np.testing.assert_array_equal(explorer.val_line.get_ydata(), UNDERFITS.val_losses)
    np.testing.assert_array_equal(explorer.val_line.get_xdata(), [1, 2, 3])
    assert explorer.best_marker.get_data() == ([3], [1.4])
    assert explorer.gap_line.get_ydata() == [1.2, 1.4]
    assert explorer.gap_text.get_text() == "gap 0.200"
    assert explorer.best_text.get_text() == "best 1.400\nepoch 3"
    assert explorer.ax.get_title() == "L2 weight decay λ = 1: underfits"
    assert explorer.image.value != first_image
    assert describe_regularization_run(UNDERFITS, "L2 weight decay λ", 1.0) in \
        explorer.status.value
    # every setting of the remedy faint behind: training and validation, 4 settings
    assert len(explorer._faint) == 8
    explorer.controls["remedy"].value = "dropout p"
    assert len(explorer._faint) == 4 and len(explorer.ax.lines) == 4 + 4
    assert plt.get_fignums() == []  # never a pyplot figure


def test_bad_choices_are_refused():
    runs = synthetic_runs()
    with pytest.raises(ValueError, match=r"remedy among \['L2 weight decay λ', 'dropout p'\]"):
        RegularizationExplorer(runs, "mixup")
    with pytest.raises(ValueError, match=r"setting of 'dropout p' among \[0.0, 0.5\], but got 0.3"):
        RegularizationExplorer(runs, "dropout p", 0.3)
    with pytest.raises(ValueError, match="non-empty dict"):
        RegularizationExplorer({"dropout p": {}})
    with pytest.raises(ValueError, match="evaluate_train=True"):
        RegularizationExplorer({"dropout p": {0.0: History(val_losses=[1.0],
                                                           val_accuracies=[0.5])}})


def test_a_slider_move_is_fast():
    runs = synthetic_runs()
    explorer = RegularizationExplorer(runs)
    slider = explorer.controls["value"]
    values = [value for _, value in slider.options]
    slider.value = values[1]  # the first draw, that keeps the background
    times = []  # CPU time of this process: other work on a shared machine does not count
    for value in values * 4:
        start = time.process_time()
        slider.value = value
        times.append(time.process_time() - start)
    assert statistics.median(times) < 0.05, f"median {statistics.median(times) * 1e3:.1f} ms"


# --------------------------------------------------------------------------------------------
# Real runs, and the static figure beside the explorer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_runs():
    """A 64-unit MLP on 120 digits, 40 epochs in float64: unregularized, then strong L2."""
    X, y, X_val, y_val = digits(generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = (X[:120], y[:120], X_val[:300], y_val[:300])

    def run(weight_decay):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 10)).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9,
                                    weight_decay=weight_decay)
        return fit(model, optimizer, data, epochs=40, batch_size=40,
                   generator=torch.Generator().manual_seed(1), evaluate_train=True)

    return {"L2 weight decay λ": {0.0: run(0.0), 0.1: run(0.1)}}


def test_real_runs_overfit_and_underfit(real_runs):
    free, strong = real_runs["L2 weight decay λ"].values()
    s = summarize_regularization_run(free)
    assert s.verdict == "overfits" and s.final_train < 0.05 and s.rise > 0.2 and s.gap > 0.3
    s = summarize_regularization_run(strong)
    assert s.verdict == "underfits" and s.final_train > 1.0
    explorer = RegularizationExplorer(real_runs)
    explorer.controls["value"].value = 0.1
    assert "underfits" in explorer.status.value and len(explorer.val_line.get_ydata()) == 40


def test_the_static_figure_has_a_row_per_remedy_and_a_column_per_setting(real_runs):
    runs = {**synthetic_runs(), "L2 on 120 digits λ": real_runs["L2 weight decay λ"]}
    fig, axes = plots.plot_regularization_small_multiples(runs)
    assert axes.shape == (3, 4)
    assert [ax.get_visible() for ax in axes[1]] == [True, True, False, False]
    assert axes[0, 3].get_title() == "L2 weight decay λ = 1"
    assert axes[1, 1].get_title() == "dropout p = 0.5"
    train, val, best = axes[1, 0].lines  # the baseline: no dashed baseline behind it
    np.testing.assert_array_equal(val.get_ydata(), OVERFITS.val_losses)
    np.testing.assert_array_equal(train.get_ydata(), OVERFITS.train_eval_losses)
    assert best.get_data() == (2, 0.4)
    baseline, train, val, best = axes[1, 1].lines
    np.testing.assert_array_equal(baseline.get_ydata(), OVERFITS.val_losses)
    assert axes[0, 0].get_yscale() == "log"
    assert [t.get_text() for t in axes[1, 0].texts] == ["gap 0.59"]
    assert fig.legends and plt.fignum_exists(fig.number)
    plt.close(fig)
    fig2, axes2 = plt.subplots(3, 4)
    fig, axes = plots.plot_regularization_small_multiples(runs, axes=axes2)
    assert fig is fig2 and axes[2, 1].get_title() == "L2 on 120 digits λ = 0.1"
    plt.close(fig)
