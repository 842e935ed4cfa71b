"""Chapter 06's explorer: a thin view that looks precomputed runs up and redraws in place."""

import matplotlib
import numpy as np
import pytest
import torch

from helpers import plots, training
from helpers.data import digits
from helpers.training import History
from helpers.widgets import TrainingRunExplorer, describe_run

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
])
def test_describe_run(run, words):
    text = describe_run(run, 0.1, "cosine", 50)
    assert text.startswith("lr 0.1, cosine, warm-up 50 steps: ") and words in text


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


def test_one_cycle_ignores_the_warm_up(grid):
    explorer = TrainingRunExplorer(grid, lr=0.1, schedule="one-cycle", warmup=5)
    assert explorer.run() is grid.runs[(0.1, "one-cycle", 0)]
    assert "warm-up" not in explorer.status.value


def test_static_figures_draw_every_run(grid):
    runs = {"a": grid.runs[(0.01, "constant", 0)], "b": grid.runs[(0.1, "cosine", 5)]}
    fig, axes = plots.plot_run_small_multiples(runs)
    assert axes.shape == (2, 2) and axes[0][1].get_title() == "b"
    np.testing.assert_array_equal(axes[1][1].lines[0].get_ydata(), runs["b"].val_accuracies)
    fig, axes = plots.plot_training_run(runs["a"], title="one run")
    assert len(axes) == 3 and axes[1].get_title() == "one run"
    np.testing.assert_array_equal(plots.epoch_steps(runs["a"]), [6, 12])
