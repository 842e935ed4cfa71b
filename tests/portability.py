"""The portability check: the stored notebooks and the exercise checkers, re-run as they would run
on other learners' machines.

A stored output is a claim that every learner gets the same. What can change it without any change
to the code is how the CPU computes: torch's vectorised CPU kernels (`ATEN_CPU_CAPABILITY`:
default, avx2, avx512), MKL's code paths (`MKL_ENABLE_INSTRUCTIONS`, and `MKL_CBWR`, MKL's
reproducible mode: one fixed code path), and the number of threads, which splits reductions
differently (`OMP_NUM_THREADS`: 1 in `make test`, unset in `make lab`, where torch takes every
core). Each changes the last bits of float32 results, which chaotic computations (training at
large learning rates) amplify into different numbers.

`make test` runs the whole suite single-threaded on this CPU's best kernels; this script runs the
notebooks, the solution notebooks and the exercise-checker tests again under each configuration
below, so that together they cover every dimension, and fails if any output or assertion differs.

    python tests/portability.py                     # every configuration, the default paths
    python tests/portability.py notebooks/06_learning_rate.ipynb -c 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("notebooks", "exercises/solutions", "tests/test_exercises.py",
         "tests/test_exercises_optim.py", "tests/test_exercises_lr_metrics.py",
         "tests/test_exercises_evaluation.py", "tests/test_exercises_regularization.py",
         "tests/test_exercises_imbalanced.py", "tests/test_exercises_efficiency.py")
# the student notebooks are run once, single-threaded, by the main suite: whether they run does not
# depend on how the CPU rounds
DESELECT = "not student_notebook_runs"
UNSET = None


def native_capability() -> str:
    """The best CPU kernels torch uses here unless told otherwise: 'default', 'avx2', 'avx512'."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run([sys.executable, "-c", "import torch; "
                          "print(torch.backends.cpu.get_cpu_capability())"],
                         env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().lower()


@dataclass(frozen=True)
class Configuration:
    """One model of another learner's machine: environment variables (None: unset)."""

    name: str
    env: dict[str, str | None]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is UNSET:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def describe(self) -> str:
        return " ".join(f"{k}={'(unset)' if v is UNSET else v}" for k, v in self.env.items())


def configurations(native: str | None = None) -> list[Configuration]:
    """Two machines besides `make test`'s own (this CPU's best kernels, MKL's default path, one
    thread): together the three cover every kernel level this CPU has, two MKL paths besides the
    default, and 1, 2 and the default number of threads."""
    native = native_capability() if native is None else native
    # on an AVX-512 CPU the main run uses avx512, so this one covers avx2; elsewhere avx2 is the
    # best there is (or, on a CPU without it, the portable kernels again)
    second = "avx2" if native in ("avx2", "avx512") else "default"
    return [
        Configuration("portable kernels, MKL limited to SSE4.2, 2 threads",
                      {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                       "MKL_CBWR": UNSET, "OMP_NUM_THREADS": "2"}),
        Configuration(f"{second} kernels, MKL's reproducible mode, threads as in make lab",
                      {"ATEN_CPU_CAPABILITY": second, "MKL_ENABLE_INSTRUCTIONS": UNSET,
                       "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": UNSET}),
    ]


@dataclass(frozen=True)
class Outcome:
    configuration: Configuration
    returncode: int
    seconds: float
    summary: str
    failures: list[str]

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def run(configuration: Configuration, paths=PATHS, cwd: Path = ROOT, workers: int | str = "auto",
        extra_args=()) -> Outcome:
    """pytest on `paths` under `configuration`, with `workers` pytest-xdist workers (0: none;
    "auto": one per core, as in `make test`).

    Threaded workers side by side oversubscribe the cores, and OpenMP threads that spin while
    they wait make that many times slower (two processes of two threads on two cores: a training
    step of chapter 06 took 93 ms instead of 0.8 ms); `OMP_WAIT_POLICY=PASSIVE` lets them sleep
    instead. It changes when an idle thread wakes, not how the work is split, so results are
    unchanged.
    """
    parallel = ["-n", str(workers), "--dist", "loadscope"] if workers else ["-p", "no:xdist"]
    command = [sys.executable, "-m", "pytest", *parallel, "-q", "-rfE", "--color=no",
               "-k", DESELECT, *extra_args, *map(str, paths)]
    env = configuration.environment()
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = result.stdout.strip().splitlines()
    failures = [line.split(" ", 1)[1].split(" - ")[0] for line in lines
                if line.startswith(("FAILED ", "ERROR "))]
    if result.returncode != 0 and not failures:  # a crash, or nothing collected
        failures = (lines + result.stderr.strip().splitlines())[-20:]
    return Outcome(configuration, result.returncode, seconds, lines[-1] if lines else "",
                   failures)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=list(PATHS))
    parser.add_argument("-c", "--configuration", type=int, action="append",
                        help="run only configuration number N (1, 2, ...)")
    args = parser.parse_args(argv)
    chosen = configurations()
    if args.configuration:
        chosen = [chosen[n - 1] for n in args.configuration]
    outcomes = []
    for number, configuration in enumerate(chosen, 1):
        print(f"[{number}/{len(chosen)}] {configuration.name}: {configuration.describe()}",
              flush=True)
        outcome = run(configuration, args.paths)
        outcomes.append(outcome)
        print(f"      {'passed' if outcome.passed else 'FAILED'} in {outcome.seconds:.0f} s: "
              f"{outcome.summary}", flush=True)
        for failure in outcome.failures:
            print(f"      {failure}", flush=True)
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
