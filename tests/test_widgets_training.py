"""Chapter 06's explorer: a thin view that looks precomputed runs up and redraws in place."""

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import plots, training
from helpers.data import digits
from helpers.training import History
from helpers.widgets import TrainingRunExplorer, chance_level, describe_run, judge_run

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def grid():
    data = digits(generator=torch.Generator().manual_seed(0))
    return training.precompute_grid(data, lrs=[0.01, 0.1, 1.0], warmups=(0, 5), epochs=2,
                                    batch_size=256)


def history(val_losses, accuracies, diverged=False):
    return History(lrs=[0.1] * 4, step_losses=[1.0] * 4, train_losses=[1.0, 1.0],
                   val_losses=val_losses, val_accuracies=accuracies, diverged=diverged)


@pytest.mark.parametrize("run, words", [
    (history([2.0, 0.5], [0.5, 0.9]), "learned; validation loss 0.500, accuracy 0.900"),
    (history([2.3, 2.4], [0.1, 0.1]), "did not learn"),
    (history([], [], diverged=True), "diverged (the loss became inf or nan)"),
    # the first epoch already wrecked: the last loss is below it, but the run is at chance
    (history([4.0, 2.44], [0.1, 0.1]), "did not learn; validation loss 2.440, accuracy 0.100 "
     "(chance: loss 2.303, accuracy 0.100; before training: loss 2.303)"),
    (history([0.5, 2.4], [0.9, 0.55]), "learned, then lost it; validation loss 2.400, accuracy "
     "0.550 (best accuracy 0.900 at epoch 1"),
    (history([2.2, 2.1], [0.3, 0.35]), "learned little"),
])
def test_describe_run(run, words):
    text = describe_run(run, 0.1, "cosine", 50)
    assert text.startswith("lr 0.1, cosine, warm-up 50 steps: ") and words in text


def test_chance_is_the_best_guess_that_ignores_the_input():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    chance = chance_level(labels)
    shares = torch.tensor([3, 1, 2], dtype=torch.float64) / 6
    # cross-entropy of predicting the class shares for every sample, as torch computes it
    logits = shares.log().expand(len(labels), 3)
    assert chance.loss == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-12)
    assert chance.accuracy == 0.5 and chance.classes == 3
    assert chance_level() == chance_level(classes=10)  # the digits MLP's 10 logits
    assert chance_level().loss == pytest.approx(math.log(10)) and chance_level().accuracy == 0.1
    with pytest.raises(ValueError, match="expected a non-empty 1-D tensor of class indices"):
        chance_level(torch.tensor([[0, 1]]))


@pytest.fixture(scope="module")
def extremes():
    """Chapter 06's data and the ends of its grid of rates (constant schedule, 12 epochs)."""
    data = digits(generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return data, training.precompute_grid(data, lrs=[1e-3, 10 ** -0.75, 10 ** 0.25, 10 ** 0.5],
                                          schedules_=["constant"], warmups=(0,))


def test_runs_at_chance_are_not_called_learned(extremes):
    data, grid = extremes
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    explorer = TrainingRunExplorer(grid, lr=0.1, data=data)
    assert torch.equal(torch.rand(3), expected_draw)  # the global generator is left alone
    chance = chance_level(data[3])
    assert explorer.chance == chance
    expected = {1e-3: "learned", 10 ** -0.75: "learned", 10 ** 0.25: "did not learn",
                10 ** 0.5: "did not learn"}
    for lr, verdict in expected.items():
        run = grid.runs[(lr, "constant", 0)]
        assert judge_run(run, chance, explorer.initial_loss)[0] == verdict
        explorer.controls["lr"].value = lr
        assert f": {verdict};" in explorer.status.value
        if verdict == "did not learn":  # the last loss is below the first epoch's, yet at chance
            assert run.val_accuracies[-1] < chance.accuracy + 0.05
            assert "#cf222e" in explorer.status.value


def test_the_view_shows_the_run_the_controls_ask_for(grid):
    explorer = TrainingRunExplorer(grid, lr=0.1, schedule="constant")
    figure, lines = explorer.figure, explorer.val_line
    first_image = explorer.image.value
    explorer.controls["lr"].value = 0.9  # snaps to the grid's 1.0
    explorer.controls["schedule"].value = "cosine"
    explorer.controls["warmup"].value = 5
    expected = grid.runs[(1.0, "cosine", 5)]
    assert explorer.run() is expected
    assert explorer.figure is figure and explorer.val_line is lines  # redrawn in place
    np.testing.assert_array_equal(explorer.val_line.get_ydata(), expected.val_losses)
    np.testing.assert_array_equal(explorer.lr_line.get_ydata(), expected.lrs)
    assert explorer.image.value != first_image
    assert "lr 1, cosine, warm-up 5 steps" in explorer.status.value


def test_the_loss_panel_has_a_legend_drawn_once(grid):
    explorer = TrainingRunExplorer(grid, lr=0.1)
    legend = explorer.loss_ax.get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == [plots.TRAINING_LINE, plots.VALIDATION_LINE]
    assert labels == ["training (each step)", "validation (each epoch)"]
    assert [explorer.train_line.get_label(), explorer.val_line.get_label()] == labels
    explorer.figure.canvas.draw()
    box, panel = legend.get_window_extent(), explorer.loss_ax.get_window_extent()
    assert box.y0 >= panel.y1 - 1 and box.y1 <= explorer.figure.bbox.y1  # above, no line under it
    explorer.controls["lr"].value = 1.0
    assert explorer.loss_ax.get_legend() is legend  # part of the kept background, not redrawn
    assert legend not in explorer._moving


def test_one_cycle_ignores_the_warm_up(grid):
    explorer = TrainingRunExplorer(grid, lr=0.1, schedule="one-cycle", warmup=5)
    assert explorer.run() is grid.runs[(0.1, "one-cycle", 0)]
    assert "warm-up" not in explorer.status.value


def test_static_figures_draw_every_run(grid):
    runs = {"a": grid.runs[(0.01, "constant", 0)], "b": grid.runs[(0.1, "cosine", 5)]}
    fig, axes = plots.plot_run_small_multiples(runs)
    assert axes.shape == (2, 2) and axes[0][1].get_title() == "b"
    np.testing.assert_array_equal(axes[1][1].lines[0].get_ydata(), runs["b"].val_accuracies)
    for column, run in enumerate(runs.values()):  # a legend by label, not by drawing order
        handles, labels = axes[0][column].get_legend_handles_labels()
        assert labels == ["training (each step)", "validation (each epoch)"]
        np.testing.assert_array_equal(handles[0].get_ydata(), run.step_losses)
        np.testing.assert_array_equal(handles[1].get_ydata(), run.val_losses)
    fig, axes = plots.plot_training_run(runs["a"], title="one run")
    assert len(axes) == 3 and axes[1].get_title() == "one run"
    np.testing.assert_array_equal(plots.epoch_steps(runs["a"]), [6, 12])
