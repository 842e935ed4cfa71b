"""How long each chapter and each exercise solution takes to run, top to bottom, in a fresh kernel.

A teacher plans a lecture or a lab around these figures, and the course promises that every
notebook runs in seconds on two CPU cores. Each notebook is read from disk, executed with nbclient
in a new `python3` kernel started with `OMP_NUM_THREADS=1` (torch single-threaded, as the tests
run it), and thrown away: nothing is written back. Wall seconds run from the kernel's start to its
shutdown, so they include the imports; the slowest cell is timed from its execute request to its
reply. Cells tagged `raises-exception` may raise, as under nbval.

    .venv/bin/python benchmarks/chapter_times.py [PATTERN ...] [--repeats 1]

PATTERN is a glob relative to the repository root (default: notebooks/*.ipynb and
exercises/solutions/*.ipynb). With several repeats, each figure is the median over the runs.
The load average before and after is printed, because other work on the machine slows every
figure. Exits with 1 when a notebook fails to run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATTERNS = ("notebooks/*.ipynb", "exercises/solutions/*.ipynb")
CELL_TIMEOUT_S = 600


@dataclass
class Run:
    """One execution of one notebook: wall seconds and seconds per code cell (by cell index)."""

    wall: float
    cell_seconds: dict[int, float]


@dataclass
class Row:
    """A notebook's line in the table: medians over its runs."""

    name: str
    cells: int
    wall: float
    slowest_cell: int
    slowest_seconds: float


def notebooks_matching(patterns: list[str]) -> list[Path]:
    """The notebooks the globs name, in order, each once; a glob that matches nothing is an error
    (a typo would otherwise time nothing and say so nowhere)."""
    found: list[Path] = []
    for pattern in patterns:
        if Path(pattern).is_absolute():
            raise ValueError(f"expected a glob relative to {ROOT}, but got {pattern!r}")
        matches = sorted(path for path in ROOT.glob(pattern) if path.suffix == ".ipynb")
        if not matches:
            raise ValueError(f"expected the glob {pattern!r} to match notebooks under {ROOT}, "
                             f"but it matched none")
        found.extend(path for path in matches if path not in found)
    return found


def kernel_environment() -> dict[str, str]:
    """This process's environment with torch held to one thread in the kernel, and without
    MPLBACKEND, so that the kernel draws figures with its inline backend as in JupyterLab (their
    rendering is part of a chapter's time)."""
    environment = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}
    return {**environment, "OMP_NUM_THREADS": "1"}


def execute(path: Path) -> Run:
    """Run the notebook at `path` once in a fresh kernel, in its own folder, keeping nothing."""
    notebook = nbformat.read(path, as_version=4)
    started: dict[int, float] = {}
    cell_seconds: dict[int, float] = {}

    def on_execute(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def on_executed(cell, cell_index, **_):
        cell_seconds[cell_index] = time.perf_counter() - started[cell_index]

    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=on_execute, on_cell_executed=on_executed)
    start = time.perf_counter()
    client.execute(env=kernel_environment())
    return Run(time.perf_counter() - start, cell_seconds)


def summarise(name: str, runs: list[Run]) -> Row:
    """Medians over the runs: the wall time, and the cell whose median time is largest."""
    per_cell = {index: statistics.median(run.cell_seconds[index] for run in runs)
                for index in runs[0].cell_seconds}
    slowest = max(per_cell, key=per_cell.get)
    return Row(name, len(per_cell), statistics.median(run.wall for run in runs), slowest,
               per_cell[slowest])


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} CPU(s)"


def table(rows: list[Row]) -> str:
    header = ("notebook", "code cells", "wall s", "slowest cell", "its s")
    lines = [(row.name, str(row.cells), f"{row.wall:.1f}", str(row.slowest_cell),
              f"{row.slowest_seconds:.1f}") for row in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
            for line in [header, *lines]]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", default=list(DEFAULT_PATTERNS), metavar="PATTERN",
                        help="glob relative to the repository root (default: every chapter and "
                             "every exercise solution)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each notebook")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"expected --repeats of at least 1, but got {args.repeats}")
    try:
        paths = notebooks_matching(args.patterns)
    except ValueError as error:
        parser.error(str(error))
    print(f"load average before: {load()}")
    print(f"{len(paths)} notebook(s), {args.repeats} run(s) each, OMP_NUM_THREADS=1 in the kernel; "
          f"the slowest cell is counted from 0 over all cells, markdown included")
    rows, failed = [], []
    for path in paths:
        name = str(path.relative_to(ROOT))
        try:
            runs = [execute(path) for _ in range(args.repeats)]
        except CellExecutionError as error:
            failed.append(name)
            print(f"{name}: FAILED\n{str(error)[-2000:]}", file=sys.stderr)
            continue
        rows.append(summarise(name, runs))
        print(f"{name}: {rows[-1].wall:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"load average after: {load()}")
    total = sum(row.wall for row in rows)
    slowest = max(rows, key=lambda row: row.wall) if rows else None
    print(f"{len(rows)} notebook(s) ran in {total:.0f} s in all"
          + (f"; the slowest, {slowest.name}, in {slowest.wall:.0f} s" if slowest else "")
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
