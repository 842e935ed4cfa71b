"""How long the learning-rate explorer takes to answer a control change, measured headlessly.

Each sample is one assignment to a control's value, timed from the assignment to the new PNG in
the image widget: the recomputation of the run and the Agg render. The sequence moves every
slider of every optimizer (learning rate, momentum, alpha, betas, steps, start point) and switches
optimizer and surface in between (those switches are timed too but do not count: they redraw the
contours, which is not a slider update).

    .venv/bin/python benchmarks/widget_latency.py [--repeats 3]

Prints the median and the 90th percentile in milliseconds; exits with 1 when the median is over
the course's target of 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402

from helpers.widgets import LearningRateExplorer  # noqa: E402

TARGET_MS = 50.0

SWEEPS = {  # (optimizer, surface) -> the slider moves made there
    ("SGD", "quadratic"): [("lr", v) for v in np.geomspace(1e-3, 0.5, 20)]
    + [("momentum", v) for v in np.linspace(0.0, 0.95, 10)] + [("nesterov", True)]
    + [("x0", v) for v in np.linspace(-4.5, 4.5, 5)] + [("steps", s) for s in (20, 80, 150)],
    ("SGD", "noisy quadratic"): [("lr", v) for v in np.geomspace(1e-3, 0.3, 10)],
    ("RMSprop", "rosenbrock"): [("alpha", v) for v in np.linspace(0.5, 0.999, 10)]
    + [("lr", v) for v in np.geomspace(1e-3, 0.1, 10)],
    ("Adam", "saddle"): [("beta1", v) for v in np.linspace(0.0, 0.99, 10)]
    + [("beta2", v) for v in np.linspace(0.9, 0.9999, 10)] + [("y0", v) for v in (0.5, -0.5)],
    ("AdamW", "rosenbrock"): [("lr", v) for v in np.geomspace(1e-3, 0.3, 10)],
    ("Adagrad", "quadratic"): [("lr", v) for v in np.geomspace(1e-2, 3.0, 10)],
}


def timed(control, value) -> float:
    start = time.perf_counter()
    control.value = value
    return 1000 * (time.perf_counter() - start)


def measure(repeats: int) -> tuple[list[float], list[float]]:
    """Milliseconds per slider update, and per optimizer / surface switch."""
    explorer = LearningRateExplorer()
    sliders, switches = [], []
    for _ in range(repeats):
        for (optimizer, surface), moves in SWEEPS.items():
            switches.append(timed(explorer.controls["surface"], surface))
            switches.append(timed(explorer.controls["optimizer"], optimizer))
            for name, value in moves:
                value = value if isinstance(value, bool) else type(
                    explorer.controls[name].value)(value)
                sliders.append(timed(explorer.controls[name], value))
    return sliders, switches


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="times through every sweep")
    args = parser.parse_args(argv)
    sliders, switches = measure(args.repeats)
    median = statistics.median(sliders)
    p90 = float(np.percentile(sliders, 90))
    print(f"slider updates: {len(sliders)}")
    print(f"median: {median:.1f} ms")
    print(f"p90:    {p90:.1f} ms")
    print(f"optimizer / surface switches (not counted): median "
          f"{statistics.median(switches):.1f} ms over {len(switches)}")
    met = median <= TARGET_MS
    print(f"target median <= {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
