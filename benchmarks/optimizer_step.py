"""How fast an Adam step is, and how close each implementation gets to the memory's bandwidth.

Every implementation updates the same parameters (10 M in 20 float32 tensors by default), one
step each in turn, so that a busy machine slows all of them alike; a step is timed alone, without
forward or backward. For each one the table gives the median milliseconds per step, the bytes
the traffic model says it moves (`ADAM_PASSES`), the bandwidth that makes, and that bandwidth as
a percentage of a measured large copy (read + write counted). In-place kernels can beat the copy:
a copy also reads every destination cache line before overwriting it.

    .venv/bin/python benchmarks/optimizer_step.py [--numel 10000000] [--tensors 20] [--repeats 7]

The last line is the ratio of our compiled Adam's time to torch's fused Adam's; the goal is at
most 1.2. Exits with 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import sys

import torch

from helpers.efficiency.steps import (
    IMPLEMENTATIONS,
    adam_bytes_per_parameter,
    adam_step_times,
    copy_bandwidth,
)

GOAL = 1.2


def table(times: dict[str, float], numel: int, dtype: torch.dtype, bandwidth: float) -> str:
    header = ("implementation", "ms/step", "MB/step (model)", "GB/s", "% of copy")
    rows = [header]
    for name, seconds in times.items():
        moved = adam_bytes_per_parameter(name, dtype) * numel
        rows.append((IMPLEMENTATIONS[name], f"{1000 * seconds:.2f}", f"{moved / 1e6:.0f}",
                     f"{moved / seconds / 1e9:.1f}", f"{100 * moved / seconds / bandwidth:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=10_000_000, help="parameters in all")
    parser.add_argument("--tensors", type=int, default=20, help="tensors they are split into")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per implementation")
    args = parser.parse_args(argv)
    dtype = torch.float32
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.numel:,} float32 parameters in {args.tensors} tensors; median of "
          f"{args.repeats} interleaved steps")
    copy = copy_bandwidth(2**24, dtype, repeats=args.repeats)
    in_place = copy_bandwidth(2**24, dtype, in_place=True, repeats=args.repeats)
    print(f"copy bandwidth: {copy / 1e9:.1f} GB/s (dst.copy_(src)); in place: "
          f"{in_place / 1e9:.1f} GB/s (x.mul_(1)); both count read + write")
    times = adam_step_times(args.numel, args.tensors, dtype, repeats=args.repeats)
    print(table(times, args.numel, dtype, copy))
    ratio = times["ours_compiled"] / times["torch_fused"]
    print(f"goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"compiled scratch Adam / torch fused Adam: {ratio:.2f}×")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
