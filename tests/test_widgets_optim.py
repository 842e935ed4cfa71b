"""The learning-rate explorer: its pure computations, and the view that updates in place."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.surfaces import (  # noqa: E402
    KNOBS,
    explore,
    knob_options,
    loss_range,
    make_surface,
    quadratic,
    rosenbrock,
    run_optimizer,
    saddle,
)
from helpers.widgets import LearningRateExplorer  # noqa: E402

# --------------------------------------------------------------------------------------------
# The pure part
# --------------------------------------------------------------------------------------------


def test_explore_is_run_optimizer_plus_the_stable_limit():
    surface = quadratic(10.0)
    frame = explore(surface, "SGD", 0.15, 40, momentum=0.5)
    expected = run_optimizer(surface, "SGD", 0.15, 40, momentum=0.5)
    assert torch.equal(frame.trajectory.points, expected.points)
    assert frame.stable_lr == pytest.approx(0.3) and frame.stable
    assert frame.limit_text == "lr 0.15 < 2(1+μ)/λmax = 0.3: stable"


@pytest.mark.parametrize(("lr", "stable", "text"), [
    (0.19, True, "lr 0.19 < 2/λmax = 0.2: stable"),
    (0.21, False, "lr 0.21 >= 2/λmax = 0.2: unstable"),
])
def test_the_limit_is_marked_on_either_side(lr, stable, text):
    frame = explore(quadratic(10.0), "SGD", lr, 300)
    assert frame.stable is stable and frame.limit_text == text
    assert frame.trajectory.diverged is not stable


def test_nesterov_limit_formula():
    frame = explore(quadratic(10.0), "SGD", 0.1, 10, momentum=0.5, nesterov=True)
    assert frame.limit_text.startswith("lr 0.1 < 2(1+μ)/((1+2μ)λmax) = 0.15")


@pytest.mark.parametrize(("optimizer", "surface"), [("Adam", quadratic(10.0)),
                                                    ("SGD", rosenbrock()), ("SGD", saddle())])
def test_no_limit_where_none_is_known(optimizer, surface):
    frame = explore(surface, optimizer, 0.001, 10)
    assert frame.stable_lr is None and frame.stable is None and frame.limit_text == ""


def test_verdicts():
    assert explore(quadratic(10.0), "SGD", 0.5, 100).verdict.startswith("diverged at step ")
    # x shrinks by 1 - 0.1 * 1 per step, y by 1 - 0.1 * 10 = 0: f = x0^2 / 2 * 0.9^20
    assert explore(quadratic(10.0), "SGD", 0.1, 10).verdict == (
        f"decreasing: f - f* 19.2 -> {8 * 0.9**20:.3g}")
    frame = explore(quadratic(10.0), "SGD", 0.1, 300)
    assert frame.verdict.startswith("reached the minimum: f - f* 19.2 -> ")
    assert frame.rate_text == "per step contraction max_i |1 - γλ_i| = 0.9 < 1: converges"
    assert explore(quadratic(10.0), "SGD", 0.21, 10).rate_text.endswith(
        "= 1.1 >= 1: does not converge")


# every surface x optimizer that chapters 03-05 name, and what their text says of it
CHAPTER_RUNS = [
    # chapter 03: the regimes on the quadratic and on Rosenbrock
    ("quadratic", "SGD", dict(lr=0.005), 50, None, "decreasing"),
    ("quadratic", "SGD", dict(lr=0.1), 50, None, "decreasing"),
    ("quadratic", "SGD", dict(lr=0.19), 50, None, "decreasing"),
    ("quadratic", "SGD", dict(lr=0.21), 50, None, "diverged"),
    ("rosenbrock", "SGD", dict(lr=1e-3), 300, None, "decreasing"),
    ("rosenbrock", "SGD", dict(lr=2e-3), 300, None, "decreasing"),  # bounces, not diverges
    ("rosenbrock", "SGD", dict(lr=2.5e-3), 300, None, "diverged"),
    # chapter 05: one rate per optimizer on three surfaces, 200 steps
    ("saddle", "SGD", dict(lr=1e-3, momentum=0.9), 200, None, "decreasing"),
    ("saddle", "Adagrad", dict(lr=0.5), 200, None, "minimum"),  # escapes at once
    ("saddle", "Adam", dict(lr=0.1), 200, None, "minimum"),
    ("quadratic50", "Adagrad", dict(lr=0.5), 200, None, "minimum"),  # below 1e-7
    ("quadratic50", "RMSprop", dict(lr=0.05), 200, None, "minimum"),
    ("quadratic50", "Adam", dict(lr=0.1), 200, None, "minimum"),
    ("rotated quadratic", "Adam", dict(lr=0.1), 1000, None, "minimum"),  # below 1e-5
    ("rotated quadratic", "RMSprop", dict(lr=0.05), 1000, None, "hovering"),  # about 1e-2
    ("rotated quadratic", "Adagrad", dict(lr=0.5), 1000, None, "decreasing"),  # about 0.05
    # chapter 05's misconception: Adam at a large rate hovers, SGD diverges
    ("noisy quadratic", "Adam", dict(lr=3.0), 400, None, "hovering"),
    ("noisy quadratic", "SGD", dict(lr=3.0), 400, None, "diverged"),
    ("rosenbrock", "Adam", dict(lr=3.0), 200, None, "hovering"),
    # the saddle from the ridge y = 0: the loss falls to 0, f - f* stays 0.25
    ("saddle", "SGD", dict(lr=0.5), 50, (-2.0, 0.0), "saddle"),
]


@pytest.mark.parametrize(("surface", "optimizer", "options", "steps", "start", "kind"),
                         CHAPTER_RUNS)
def test_the_verdicts_agree_with_the_chapters(surface, optimizer, options, steps, start, kind):
    built = quadratic(50.0) if surface == "quadratic50" else make_surface(surface)
    options = dict(options)
    lr = options.pop("lr")
    assert explore(built, optimizer, lr, steps, start, **options).outcome.kind == kind


def test_knob_options_pass_only_each_optimizers_own_knobs():
    knobs = dict(momentum=0.9, nesterov=True, alpha=0.9, beta1=0.8, beta2=0.99)
    assert knob_options("SGD", **knobs) == {"momentum": 0.9, "nesterov": True}
    assert knob_options("SGD", **{**knobs, "momentum": 0.0}) == {"momentum": 0.0,
                                                                  "nesterov": False}
    assert knob_options("RMSprop", **knobs) == {"alpha": 0.9, "momentum": 0.9}
    assert knob_options("Adam", **knobs) == {"betas": (0.8, 0.99)}
    assert knob_options("AdamW", **knobs) == {"betas": (0.8, 0.99), "weight_decay": 0.01}
    assert knob_options("AdamW", weight_decay=0.5)["weight_decay"] == 0.5
    assert knob_options("Adagrad", **knobs) == {}
    for optimizer in KNOBS:  # every combination runs
        explore(quadratic(), optimizer, 0.01, 5, **knob_options(optimizer, **knobs))


def test_loss_range_covers_the_view():
    for surface in (quadratic(), rosenbrock(), saddle()):
        low, high = loss_range(surface)
        assert high == pytest.approx(low * 1e12)
        assert surface(torch.tensor(surface.start)).item() - surface.minimum_value < high


@pytest.mark.parametrize(("call", "message"), [
    (lambda: explore(quadratic(), "LBFGS"), "expected an optimizer among"),
    (lambda: explore(quadratic(), "Adam", betas=(0.9, 0.99), momentum=0.9),
     r"expected options among \('betas',\) for Adam, but got \['momentum'\]"),
    (lambda: knob_options("sgd"), "expected an optimizer among"),
    (lambda: LearningRateExplorer(surface="bowl"), "expected a surface among"),
    (lambda: LearningRateExplorer(optimizer="Nadam"), "expected an optimizer among"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------------
# The view
# --------------------------------------------------------------------------------------------


@pytest.fixture
def explorer():
    return LearningRateExplorer(optimizer="SGD", surface="quadratic", lr=0.05, steps=50)


def shown_path(explorer):
    x, y = explorer.path_line.get_data()
    return np.stack([x, y], axis=1)


def test_a_slider_change_moves_the_same_lines_of_the_same_figure(explorer):
    figure, lines, image = explorer.figure, (explorer.path_line, explorer.loss_line), \
        explorer.image.value
    explorer.controls["lr"].value = 0.15
    assert explorer.figure is figure
    assert (explorer.path_line, explorer.loss_line) == lines
    expected = explore(quadratic(), "SGD", 0.15, 50, (-4.0, 1.5)).trajectory
    np.testing.assert_array_equal(shown_path(explorer), expected.points.numpy())
    np.testing.assert_array_equal(explorer.loss_line.get_data()[1],
                                  np.maximum(expected.losses.numpy(), plots.LOSS_FLOOR))
    assert bytes(explorer.image.value) != bytes(image)
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert plt.get_fignums() == []  # never a pyplot figure


def test_the_rendered_image_is_the_figure_with_the_new_lines(explorer):
    explorer.controls["lr"].value = 0.15
    blitted = bytes(explorer.image.value)
    explorer._background = None  # force a full draw
    import io

    from PIL import Image
    fast = np.asarray(Image.open(io.BytesIO(blitted)))
    full = np.asarray(Image.open(io.BytesIO(explorer.render())))
    assert fast.shape == full.shape and (fast != full).mean() < 0.001


def test_divergence_is_flagged(explorer):
    explorer.controls["lr"].value = 0.3
    assert "diverged at step" in explorer.status.value
    assert ">= 2/λmax = 0.2: unstable" in explorer.status.value
    assert "#cf222e" in explorer.status.value  # red
    explorer.controls["lr"].value = 0.1
    assert "diverged" not in explorer.status.value and "#1a7f37" in explorer.status.value


def test_every_knob_feeds_the_computation(explorer):
    explorer.controls["momentum"].value = 0.9
    explorer.controls["nesterov"].value = True
    assert explorer.frame().trajectory.points.equal(
        run_optimizer(quadratic(), "SGD", 0.05, 50, momentum=0.9, nesterov=True).points)
    explorer.controls["optimizer"].value = "Adam"
    explorer.controls["beta1"].value = 0.5
    explorer.controls["beta2"].value = 0.9
    explorer.controls["steps"].value = 30
    explorer.controls["x0"].value = 2.0
    expected = run_optimizer(quadratic(), "Adam", 0.05, 30, (2.0, 1.5), betas=(0.5, 0.9))
    np.testing.assert_array_equal(shown_path(explorer), expected.points.numpy())
    assert explorer.loss_ax.get_xlim() == (0, 30)


def test_only_the_optimizers_own_knobs_are_shown(explorer):
    def shown():
        return {name for name in ("momentum", "nesterov", "alpha", "beta1", "beta2",
                                  "weight_decay", "condition_number", "angle")
                if explorer.controls[name].layout.display != "none"}

    assert shown() == {"momentum", "nesterov", "condition_number"}
    explorer.controls["optimizer"].value = "Adam"
    assert shown() == {"beta1", "beta2", "condition_number"}
    explorer.controls["optimizer"].value = "AdamW"
    assert shown() == {"beta1", "beta2", "weight_decay", "condition_number"}
    explorer.controls["surface"].value = "rotated quadratic"
    assert shown() == {"beta1", "beta2", "weight_decay", "condition_number", "angle"}
    explorer.controls["surface"].value = "rosenbrock"
    explorer.controls["optimizer"].value = "RMSprop"
    assert shown() == {"alpha", "momentum"}
    explorer.controls["optimizer"].value = "Adagrad"
    assert shown() == set()


def test_adam_at_a_large_rate_is_not_shown_as_diverged():
    explorer = LearningRateExplorer(optimizer="Adam", surface="rosenbrock", lr=0.1, steps=200)
    explorer.controls["lr"].value = 3.0
    frame = explorer.frame()
    assert not frame.trajectory.diverged and len(frame.trajectory.points) == 201
    assert "diverged" not in explorer.status.value and "#cf222e" not in explorer.status.value
    assert "hovering" in explorer.status.value and frame.trajectory.losses[-1] < 0.1


def test_the_saddle_readout_says_it_is_not_the_minimum():
    explorer = LearningRateExplorer(optimizer="SGD", surface="saddle", lr=0.5, steps=50)
    explorer.controls["y0"].value = 0.0
    assert explorer.frame().trajectory.losses[-1] < 1e-20  # the loss itself reached 0 ...
    assert "stalled at a saddle point" in explorer.status.value  # ... a saddle, not a minimum
    assert "not at the minimum" in explorer.status.value and "f - f* stays 0.25" in \
        explorer.status.value
    assert "#1a7f37" not in explorer.status.value  # not green


def test_a_loss_that_grew_is_red_not_green():
    explorer = LearningRateExplorer(optimizer="RMSprop", surface="rosenbrock", lr=0.56, steps=50)
    assert explorer.frame().outcome.kind == "grew"
    assert "f - f* grew: 12.5 -> " in explorer.status.value
    assert "#cf222e" in explorer.status.value and "#1a7f37" not in explorer.status.value


def test_the_condition_number_and_the_angle_rebuild_the_quadratic(explorer):
    explorer.controls["condition_number"].value = 100.0
    frame = explorer.frame()
    assert frame.stable_lr == pytest.approx(0.02)
    assert "per step contraction max_i |1 - γλ_i| = " in explorer.status.value
    assert explorer.loss_ax.get_ylim() == pytest.approx(loss_range(quadratic(100.0)))
    explorer.controls["surface"].value = "rotated quadratic"
    assert explorer.controls["condition_number"].value == 50.0  # the surface's own default
    explorer.controls["angle"].value = 30.0
    expected = run_optimizer(quadratic(50.0, math.radians(30.0)), "SGD", 0.05, 50)
    np.testing.assert_array_equal(shown_path(explorer), expected.points.numpy())


def test_adamw_weight_decay_feeds_the_run(explorer):
    explorer.controls["optimizer"].value = "AdamW"
    explorer.controls["weight_decay"].value = 0.5
    expected = run_optimizer(quadratic(), "AdamW", 0.05, 50, betas=(0.9, 0.999),
                             weight_decay=0.5)
    np.testing.assert_array_equal(shown_path(explorer), expected.points.numpy())
    assert "weight decay 0.5" in explorer.setting()


def test_the_previous_run_stays_behind_faint(explorer):
    now = [100.0]
    explorer.clock = lambda: now[0]
    before = explorer.frame().trajectory.points.numpy()
    explorer.controls["lr"].value = 0.15  # a new gesture: the run at 0.05 becomes the reference
    reference = np.stack(explorer.reference_path.get_data(), axis=1)
    np.testing.assert_array_equal(reference, before)
    assert "faint: the previous run, SGD, lr 0.05" in explorer.status.value
    now[0] += 0.1
    explorer.controls["lr"].value = 0.17  # the same drag: the reference stays the run at 0.05
    np.testing.assert_array_equal(np.stack(explorer.reference_path.get_data(), axis=1), before)
    now[0] += 5
    at_017 = explorer.frame().trajectory.points.numpy()
    explorer.controls["lr"].value = 0.1  # a new gesture after a pause: the run at 0.17
    np.testing.assert_array_equal(np.stack(explorer.reference_path.get_data(), axis=1), at_017)
    explorer.controls["surface"].value = "saddle"  # another surface: nothing to compare
    assert explorer.reference is None and len(explorer.reference_path.get_xdata()) == 0


def test_a_new_surface_redraws_the_contours_and_resets_the_start(explorer):
    explorer.controls["x0"].value = 3.0
    explorer.controls["surface"].value = "rosenbrock"
    assert (explorer.controls["x0"].value, explorer.controls["y0"].value) == (-1.5, 2.0)
    assert (explorer.controls["x0"].min, explorer.controls["x0"].max) == (-2.0, 2.0)
    assert explorer.path_ax.get_xlim() == (-2.0, 2.0)
    assert len(explorer.path_ax.collections) == 1  # the old contours are gone
    assert shown_path(explorer)[0].tolist() == [-1.5, 2.0]
    assert explorer.loss_ax.get_ylim() == pytest.approx(loss_range(rosenbrock()))


def test_widget_tree_holds_the_controls_and_the_image(explorer):
    children, stack = set(), [explorer.widget]
    while stack:
        node = stack.pop()
        children.add(id(node))
        stack.extend(getattr(node, "children", ()))
    assert all(id(c) in children for c in explorer.controls.values())
    assert id(explorer.image) in children and id(explorer.status) in children


# --------------------------------------------------------------------------------------------
# The static figures beside the widgets
# --------------------------------------------------------------------------------------------


def test_small_multiples_draw_the_runs_they_name():
    surface = quadratic(10.0)
    lrs = {"too small": 0.01, "good": 0.1, "oscillating": 0.18, "divergent": 0.21}
    fig, axes = plots.plot_learning_rates(surface, "SGD", lrs, steps=40)
    assert axes.shape == (2, 4)
    for column, (caption, lr) in enumerate(lrs.items()):
        path = explore(surface, "SGD", lr, 40).trajectory
        title = axes[0, column].get_title()
        assert title.startswith(f"{caption}\nlr = {lr:.3g}: ")
        drawn = axes[0, column].lines[1].get_xydata()  # [0] marks the minimum
        np.testing.assert_array_equal(drawn, path.points.numpy())
    assert "diverged" in axes[0, 3].get_title() and "diverged" not in axes[0, 2].get_title()
    plt.close(fig)


def test_the_static_figure_says_what_the_explorer_says():
    """The small multiples' titles carry the explorer's verdict, in the explorer's colours."""
    runs = {"Adam, lr 3": dict(optimizer="Adam", lr=3.0),
            "RMSprop, lr 0.56": dict(optimizer="RMSprop", lr=0.56),
            "SGD, lr 2.5e-3": dict(optimizer="SGD", lr=2.5e-3)}
    fig, axes = plots.plot_small_multiples(rosenbrock(), runs, steps=200)
    for column, settings in enumerate(runs.values()):
        frame = explore(rosenbrock(), steps=200, **settings)
        explorer = LearningRateExplorer(optimizer=settings["optimizer"], surface="rosenbrock",
                                        lr=settings["lr"], steps=200)
        title = axes[0, column].get_title()
        assert title.endswith(frame.outcome.short)
        assert axes[0, column].title.get_color() == plots.OUTCOME_COLORS[frame.outcome.good]
        assert frame.outcome.text in explorer.status.value
        assert plots.OUTCOME_COLORS[frame.outcome.good] in explorer.status.value
    assert [axes[0, c].get_title().split(": ")[1].split(",")[0] for c in range(3)] == [
        "hovering", "grew", "diverged at step 4"]
    plt.close(fig)


def test_comparison_figure_has_one_path_and_one_loss_curve_per_run():
    surface = saddle()
    runs = {name: run_optimizer(surface, name, 0.05, 30) for name in ("SGD", "Adam")}
    fig, (path_ax, loss_ax) = plots.plot_optimizer_comparison(surface, runs)
    assert [line.get_label() for line in loss_ax.lines] == ["SGD", "Adam"]
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(),
                               runs["Adam"].losses.numpy() - surface.minimum_value)
    plt.close(fig)


def test_plot_functions_draw_into_given_axes():
    fig, ax = plt.subplots()
    assert plots.plot_surface(quadratic(), ax) == (fig, ax)
    assert plots.plot_path(run_optimizer(quadratic(), steps=3), ax) == (fig, ax)
    plt.close(fig)


def test_small_multiples_over_any_setting():
    surface = quadratic(10.0)
    runs = {"no momentum": dict(optimizer="SGD", lr=0.02),
            "momentum 0.8": dict(optimizer="SGD", lr=0.02, momentum=0.8),
            "Adam": dict(optimizer="Adam", lr=0.1, betas=(0.8, 0.99))}
    fig, axes = plots.plot_small_multiples(surface, runs, steps=30)
    assert axes.shape == (2, 3)
    for column, settings in enumerate(runs.values()):
        path = explore(surface, steps=30, **settings).trajectory
        np.testing.assert_array_equal(axes[0, column].lines[1].get_xydata(), path.points.numpy())
        np.testing.assert_array_equal(axes[1, column].lines[0].get_ydata(),
                                      np.maximum(path.losses.numpy(), plots.LOSS_FLOOR))
    plt.close(fig)
