"""Prove that our implementation equals the reference, on every device and dtype.

For every (check, device, dtype) both functions get the same inputs, and every element must satisfy
the rule of `torch.testing.assert_close`:

    |ours - reference| <= atol + rtol * |reference|

NaN matches NaN and an infinity matches the same infinity; shapes, dtypes and devices of tensor
outputs must be equal too. With `grad=True` the gradients of both (a vector-Jacobian product with
the same random cotangent) are compared in a row of their own.

The result is a `VerificationTable`: one row per (check, device, dtype) with the largest absolute
and relative error, the tolerance and the verdict. It renders as HTML in a notebook and as aligned
text in a terminal. Any failed row raises `VerificationError` (an `AssertionError`) naming the
check, device, dtype and worst element, so a notebook cell fails under nbval. Devices this machine
lacks appear as "skipped: no CUDA" rows, never as passes.

Modules register their checks with `register`; `python -m helpers.verify` runs them all.
"""

from __future__ import annotations

import argparse
import html
import importlib
import math
import pkgutil
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from helpers.devices import DEVICE_LABELS, DEVICE_TYPES, is_available, supports_dtype


@dataclass(frozen=True)
class Tolerance:
    """An element passes when |ours - reference| <= atol + rtol * |reference|."""

    rtol: float
    atol: float

    def allowed(self, reference: torch.Tensor) -> torch.Tensor:
        return self.atol + self.rtol * reference.abs()

    def __str__(self) -> str:
        return f"rtol {self.rtol:.1e}, atol {self.atol:.1e}"


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(rtol=1e-12, atol=1e-12),  # the course's float64 standard
    torch.float32: Tolerance(rtol=1.3e-6, atol=1e-5),  # torch.testing defaults
    torch.float16: Tolerance(rtol=1e-3, atol=1e-5),  # torch.testing defaults
    torch.bfloat16: Tolerance(rtol=1.6e-2, atol=1e-5),  # torch.testing defaults
}
"""Default tolerance per dtype; integer and bool outputs must be equal exactly."""

LOOSEST_FLOAT64 = Tolerance(rtol=1e-7, atol=1e-7)
"""torch.testing's own float64 default. A looser float64 tolerance would let an implementation
that secretly computes in float32 pass as float64, so `Check` refuses one."""

DEFAULT_DTYPES = (torch.float64, torch.float32, torch.float16)

EXACT = Tolerance(rtol=0.0, atol=0.0)

_DTYPE_NAMES = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32,
                "float": torch.float32, "float16": torch.float16, "half": torch.float16,
                "bfloat16": torch.bfloat16}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32 from torch.float32 or "float32" (also "double", "float", "half")."""
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    raise ValueError(f"expected a floating dtype such as torch.float32 or one of "
                     f"{sorted(_DTYPE_NAMES)}, but got {dtype!r}")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Check:
    """One claim "ours equals reference", to be proved on every device and dtype.

    `inputs(generator)` returns the arguments, built on the CPU in float64 from `generator` (a
    seeded `torch.Generator`): a tuple of positional arguments, or a dict of keyword arguments.
    For each row, floating-point tensors are cast to the row's dtype, and every tensor moves to its
    device.
    `tolerances` overrides `TOLERANCES` per dtype. With `grad=True` the gradients with respect to
    every floating-point input are compared as well. `devices` limits a check that involves no
    device (pure Python numbers, such as a learning-rate schedule) to the device types named; the
    others get a "skipped" row that says so.
    """

    name: str
    ours: Callable
    reference: Callable
    inputs: Callable[[torch.Generator], Sequence | Mapping]
    dtypes: tuple[torch.dtype, ...] = DEFAULT_DTYPES
    tolerances: Mapping[torch.dtype, Tolerance] = field(default_factory=dict)
    grad: bool = False
    devices: tuple[str, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"expected a non-empty check name, but got {self.name!r}")
        for role in ("ours", "reference", "inputs"):
            if not callable(getattr(self, role)):
                raise TypeError(f"check {self.name!r}: expected `{role}` to be callable, "
                                f"but got {type(getattr(self, role)).__name__}")
        object.__setattr__(self, "dtypes", tuple(as_dtype(d) for d in self.dtypes))
        tolerances = {as_dtype(d): t for d, t in self.tolerances.items()}
        for dtype, tol in tolerances.items():
            if not isinstance(tol, Tolerance):
                raise TypeError(f"check {self.name!r}: expected a Tolerance for "
                                f"{dtype_name(dtype)}, but got {tol!r}")
        loose = tolerances.get(torch.float64)
        if loose and (loose.rtol > LOOSEST_FLOAT64.rtol or loose.atol > LOOSEST_FLOAT64.atol):
            raise ValueError(
                f"check {self.name!r}: the float64 tolerance ({loose}) is looser than "
                f"{LOOSEST_FLOAT64}; at that tolerance a float32 computation would pass as "
                f"float64. Fix the implementation or compare in float32 instead.")
        object.__setattr__(self, "tolerances", tolerances)

    def tolerance(self, dtype: torch.dtype) -> Tolerance:
        return self.tolerances.get(dtype, TOLERANCES[dtype])

    @property
    def seed(self) -> int:
        """Stable across runs and machines, different for every check."""
        return zlib.crc32(self.name.encode())


@dataclass(frozen=True)
class Row:
    """The verdict of one check on one device in one dtype."""

    check: str
    device: str
    dtype: str
    verdict: str  # "pass", "FAIL" or "skipped: <why>"
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    tolerance: Tolerance | None = None
    detail: str = ""  # for a failure: what went wrong, naming the worst element

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def failed(self) -> bool:
        return self.verdict == "FAIL"

    @property
    def skipped(self) -> bool:
        return self.verdict.startswith("skipped")


def error_bucket(x: float | None) -> str:
    """An error as the next power of ten above it ("< 1e-15"), so tables stay stable across CPUs."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"< 1e{math.floor(math.log10(x)) + 1}"


_COLUMNS = ("check", "device", "dtype", "max abs err", "max rel err", "tolerance", "verdict")


class VerificationTable:
    """Rows of verdicts; HTML in a notebook, aligned text in a terminal."""

    def __init__(self, rows: Iterable[Row] = ()):
        self.rows = list(rows)

    def __add__(self, other: VerificationTable) -> VerificationTable:
        return VerificationTable(self.rows + other.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        counts = [sum(r.passed for r in self.rows), len(self.failures),
                  sum(r.skipped for r in self.rows)]
        return "{} passed, {} failed, {} skipped".format(*counts)

    def _cells(self, row: Row) -> tuple[str, ...]:
        verdict = {"pass": "✓ pass", "FAIL": "✗ FAIL"}.get(row.verdict, row.verdict)
        return (row.check, row.device, row.dtype, error_bucket(row.max_abs_err),
                error_bucket(row.max_rel_err), str(row.tolerance or "-"), verdict)

    def to_text(self) -> str:
        lines = [_COLUMNS] + [self._cells(r) for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(text + [self.summary()])

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        colours = {"pass": "#1a7f37", "FAIL": "#cf222e"}
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in _COLUMNS)
        body = []
        for row in self.rows:
            cells = [html.escape(c) for c in self._cells(row)]
            colour = colours.get(row.verdict, "#6e7781")
            cells[-1] = f"<b style='color:{colour}'>{cells[-1]}</b>"
            title = f" title='{html.escape(row.detail, quote=True)}'" if row.detail else ""
            body.append(f"<tr{title}>" + "".join(
                f"<td style='text-align:left;font-family:monospace'>{c}</td>" for c in cells)
                + "</tr>")
        return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
                f"<caption style='caption-side:bottom;text-align:left'>{self.summary()}"
                "</caption></table>")

    def raise_on_failure(self) -> VerificationTable:
        """Raise `VerificationError` if any row failed; otherwise return the table itself."""
        if self.failures:
            raise VerificationError(self)
        return self


class VerificationError(AssertionError):
    """At least one row failed; the message names each failure and shows the whole table."""

    def __init__(self, table: VerificationTable):
        self.table = table
        failures = [f"  {r.check} on {r.device}/{r.dtype}: {r.detail}" for r in table.failures]
        super().__init__(f"{len(failures)} of {len(table)} rows failed:\n" + "\n".join(failures)
                         + "\n\n" + table.to_text())


# --------------------------------------------------------------------------------------------
# Running a check
# --------------------------------------------------------------------------------------------


def _place(value, device: torch.device, dtype: torch.dtype):
    """Cast floating tensors to `dtype` and move every tensor to `device`, through containers."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            return value.detach().to(device=device, dtype=dtype)
        return value.detach().to(device=device)
    if isinstance(value, tuple | list):
        return type(value)(_place(v, device, dtype) for v in value)
    if isinstance(value, Mapping):
        return {k: _place(v, device, dtype) for k, v in value.items()}
    return value


def _leaves(value, path: str = "output") -> list[tuple[str, object]]:
    """Flatten nested outputs into (path, leaf) pairs: tensors, numbers, arrays."""
    if isinstance(value, tuple | list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    if isinstance(value, Mapping):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}[{k!r}]")]
    return [(path, value)]


def _float_tensors(value) -> list[torch.Tensor]:
    return [v for _, v in _leaves(value, "") if isinstance(v, torch.Tensor)
            and v.is_floating_point()]


def _call(fn: Callable, args):
    return fn(**args) if isinstance(args, Mapping) else fn(*args)


class _Mismatch(Exception):
    """A structural difference (shape, dtype, device, count) that no tolerance can excuse."""


def _as_tensor(leaf, path: str, side: str) -> torch.Tensor:
    if isinstance(leaf, torch.Tensor):
        return leaf
    if isinstance(leaf, bool | int | float | np.ndarray | np.generic):
        return torch.as_tensor(np.asarray(leaf).copy())  # a C-ordered copy of reversed views
    raise _Mismatch(f"{side} returned {type(leaf).__name__} at {path}; expected a tensor or number")


def _compare(ours, reference, tolerance: Tolerance) -> tuple[float, float, str]:
    """Largest absolute and relative errors over all leaves, and the worst violation ('' if none).

    Raises `_Mismatch` on a structural difference.
    """
    ours_leaves, ref_leaves = _leaves(ours), _leaves(reference)
    if [p for p, _ in ours_leaves] != [p for p, _ in ref_leaves]:
        raise _Mismatch(f"ours returned {[p for p, _ in ours_leaves]}, "
                        f"the reference {[p for p, _ in ref_leaves]}")
    max_abs = max_rel = 0.0
    worst, worst_ratio = "", 1.0
    for (path, o), (_, r) in zip(ours_leaves, ref_leaves):
        both_tensors = isinstance(o, torch.Tensor) and isinstance(r, torch.Tensor)
        o, r = _as_tensor(o, path, "ours"), _as_tensor(r, path, "the reference")
        if o.shape != r.shape:
            raise _Mismatch(f"{path} has shape {tuple(o.shape)}, the reference "
                            f"{tuple(r.shape)}")
        if both_tensors and o.dtype != r.dtype:
            raise _Mismatch(f"{path} has dtype {dtype_name(o.dtype)}, the reference "
                            f"{dtype_name(r.dtype)}")
        if both_tensors and o.device != r.device:
            raise _Mismatch(f"{path} is on {o.device}, the reference on {r.device}")
        exact = not (o.is_floating_point() or r.is_floating_point())
        tol = EXACT if exact else tolerance
        a, b = o.detach().cpu().double(), r.detach().cpu().double()
        same_special = (a.isnan() & b.isnan()) | (a.isinf() & (a == b))
        diff = torch.where(same_special, 0.0, (a - b).abs())
        diff = torch.where(diff.isnan(), math.inf, diff)  # NaN on one side only
        scale = torch.where(same_special, 1.0, b.abs())
        rel = torch.where(diff == 0, 0.0, diff / scale)
        if diff.numel() == 0:
            continue
        max_abs = max(max_abs, diff.max().item())
        max_rel = max(max_rel, rel.max().item())
        ratio = diff / tol.allowed(torch.where(same_special, 0.0, b))
        special = ~same_special & (a.isnan() | b.isnan() | a.isinf() | b.isinf())
        ratio = torch.where(special, math.inf, torch.where(diff == 0, 0.0, ratio))
        index = int(ratio.flatten().argmax())
        if ratio.flatten()[index] > worst_ratio:
            worst_ratio = ratio.flatten()[index].item()
            where = tuple(int(i) for i in np.unravel_index(index, tuple(a.shape)))
            worst = (f"worst element {path}{list(where) if where else ''}: "
                     f"ours={a.flatten()[index].item():.17g}, "
                     f"reference={b.flatten()[index].item():.17g}, "
                     f"|diff|={diff.flatten()[index].item():.3g} > allowed "
                     f"{tol.allowed(b.flatten()[index]).item():.3g} ({tol})")
    return max_abs, max_rel, worst


_SCALAR_TYPE_NAMES = {torch.float64: "Double", torch.float32: "Float", torch.float16: "Half",
                      torch.bfloat16: "BFloat16"}
"""How torch's kernel errors name a dtype: `"tanh_cpu" not implemented for 'Half'`."""


def _unsupported(error: Exception, dtype: torch.dtype) -> bool:
    """True when the reference's `error` says that this dtype has no kernel on this device: a
    NotImplementedError or RuntimeError saying so that names this very dtype ('Half' or
    float16, ...). float64, which every check runs, is never excused. Only the reference's
    errors are read this way; an error raised by ours is always a failure."""
    message = str(error)
    says_unsupported = ("not implemented for" in message or "Unsupported dtype" in message
                        or "does not support" in message)
    names_dtype = re.search(rf"\b({_SCALAR_TYPE_NAMES[dtype]}|{dtype_name(dtype)})\b", message)
    return (isinstance(error, NotImplementedError | RuntimeError) and says_unsupported
            and names_dtype is not None and dtype != torch.float64)


def _vjp(fn: Callable, args, cotangent_seed: int):
    """(output, gradients of <output, v> w.r.t. every floating input) for a seeded random v."""
    inputs = _float_tensors(args)
    for tensor in inputs:
        tensor.requires_grad_(True)
    output = _call(fn, args)
    outputs = [o for o in _float_tensors(output) if o.requires_grad]
    if not outputs:
        raise _Mismatch("the output does not depend differentiably on the inputs")
    generator = torch.Generator().manual_seed(cotangent_seed)
    total = sum((o * torch.randn(o.shape, generator=generator, dtype=torch.float64)
                 .to(o.device, o.dtype)).sum() for o in outputs)
    grads = torch.autograd.grad(total, inputs, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
    return output, grads


def _run_on(check: Check, device: torch.device, dtype: torch.dtype) -> list[Row]:
    names = [check.name] + ([f"{check.name} [grad]"] if check.grad else [])
    device_name, dtype_label = device.type, dtype_name(dtype)
    if not supports_dtype(device, dtype):
        reason = f"skipped: {DEVICE_LABELS[device.type]} has no {dtype_label}"
        return [Row(n, device_name, dtype_label, reason) for n in names]
    tolerance = check.tolerance(dtype)

    def inputs():
        args = check.inputs(torch.Generator().manual_seed(check.seed))
        if not isinstance(args, tuple | list | Mapping):
            args = (args,)
        return _place(args, device, dtype)

    results = {}
    for side, fn in (("reference", check.reference), ("ours", check.ours)):
        try:
            if check.grad:
                with torch.enable_grad():
                    results[side] = _vjp(fn, inputs(), check.seed + 1)
            else:  # grad mode left as it is: a reference may use autograd itself
                results[side] = (_call(fn, inputs()), None)
        except _Mismatch as error:
            return [Row(n, device_name, dtype_label, "FAIL", tolerance=tolerance,
                        detail=f"{side}: {error}") for n in names]
        except Exception as error:  # noqa: BLE001 - any failure becomes a readable row
            if side == "reference" and _unsupported(error, dtype):
                reason = f"skipped: reference has no {dtype_label} kernel on {device_name}"
                return [Row(n, device_name, dtype_label, reason) for n in names]
            return [Row(n, device_name, dtype_label, "FAIL", tolerance=tolerance,
                        detail=f"{side} raised {type(error).__name__}: {error}") for n in names]

    rows = []
    for name, part in zip(names, (0, 1)):
        try:
            max_abs, max_rel, worst = _compare(results["ours"][part], results["reference"][part],
                                               tolerance)
        except _Mismatch as error:
            rows.append(Row(name, device_name, dtype_label, "FAIL", tolerance=tolerance,
                            detail=str(error)))
            continue
        rows.append(Row(name, device_name, dtype_label, "FAIL" if worst else "pass",
                        max_abs, max_rel, tolerance, worst))
    return rows


def _device_types(devices: Iterable[str] | None) -> list[str]:
    if devices is None:
        return list(DEVICE_TYPES)
    chosen = [str(d).split(":")[0] for d in devices]
    unknown = [d for d in chosen if d not in DEVICE_TYPES]
    if unknown:
        raise ValueError(f"expected devices among {DEVICE_TYPES}, but got {unknown}")
    return [t for t in DEVICE_TYPES if t in chosen]


def run_checks(checks: Iterable[Check], *, devices: Iterable[str] | None = None,
               dtypes: Iterable[torch.dtype | str] | None = None) -> VerificationTable:
    """Run every check on every device and dtype (optionally only those named); never raises.

    Devices the machine lacks give "skipped: no CUDA"-style rows.
    """
    wanted = None if dtypes is None else {as_dtype(d) for d in dtypes}
    device_types = _device_types(devices)
    rows = []
    for check in checks:
        for device_type in device_types:
            if check.devices is not None and device_type not in check.devices:
                rows.append(Row(check.name, device_type, "all",
                                f"skipped: {'/'.join(check.devices)}-only check"))
                continue
            if not is_available(device_type):
                rows.append(Row(check.name, device_type, "all",
                                f"skipped: no {DEVICE_LABELS[device_type]}"))
                continue
            for dtype in check.dtypes:
                if wanted is None or dtype in wanted:
                    rows.extend(_run_on(check, torch.device(device_type), dtype))
    return VerificationTable(rows)


def verify(ours: Callable, reference: Callable, inputs: Callable, *, name: str,
           dtypes: Iterable[torch.dtype | str] = DEFAULT_DTYPES,
           tolerances: Mapping | None = None, grad: bool = False,
           devices: Iterable[str] | None = None) -> VerificationTable:
    """Prove `ours` equal to `reference` on every device and dtype; raise if any row fails.

    Returns the `VerificationTable` (shown as a table in a notebook).
    """
    check = Check(name, ours, reference, inputs, tuple(dtypes), tolerances or {}, grad)
    return run_checks([check], devices=devices).raise_on_failure()


def verify_all(checks: Iterable[Check], *, devices: Iterable[str] | None = None,
               dtypes: Iterable[torch.dtype | str] | None = None) -> VerificationTable:
    """`run_checks`, then raise `VerificationError` if any row failed."""
    return run_checks(checks, devices=devices, dtypes=dtypes).raise_on_failure()


# --------------------------------------------------------------------------------------------
# References that want NumPy (scikit-learn)
# --------------------------------------------------------------------------------------------


def numpy_reference(fn: Callable) -> Callable:
    """Wrap a NumPy / scikit-learn function so that it accepts the tensors a check passes."""

    def to_numpy(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
        return value

    def wrapped(*args, **kwargs):
        return fn(*(to_numpy(a) for a in args), **{k: to_numpy(v) for k, v in kwargs.items()})

    wrapped.__name__ = getattr(fn, "__name__", "reference")
    return wrapped


# --------------------------------------------------------------------------------------------
# The registry behind `python -m helpers.verify`
# --------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Check] = {}
_MODULE_OF: dict[str, str] = {}  # check name -> the module that registered it


def register(*checks: Check) -> None:
    """Add checks to the suite that `python -m helpers.verify` runs, under the caller's module."""
    module = sys._getframe(1).f_globals.get("__name__", "")
    for check in checks:
        if not isinstance(check, Check):
            raise TypeError(f"expected Check objects, but got {type(check).__name__}")
        if check.name in _REGISTRY and _REGISTRY[check.name] is not check:
            raise ValueError(f"a check named {check.name!r} is registered already")
        _REGISTRY[check.name] = check
        _MODULE_OF[check.name] = module


def registered_checks() -> list[Check]:
    """Every registered check, after importing every module of `helpers` (which registers them)."""
    import helpers

    for module in pkgutil.iter_modules(helpers.__path__):
        importlib.import_module(f"helpers.{module.name}")
    return list(_REGISTRY.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.verify",
        description="Run every registered check of the course on this machine's devices.")
    parser.add_argument("--device", nargs="+", choices=DEVICE_TYPES,
                        help="only these device types (default: all; absent ones are skipped)")
    parser.add_argument("--dtype", nargs="+", choices=sorted(_DTYPE_NAMES),
                        help="only these dtypes (default: each check's own)")
    parser.add_argument("-k", "--match", default="",
                        help="only checks whose name, or the name of the module that registered "
                             "them (e.g. metrics, calibration), contains this text")
    args = parser.parse_args(argv)
    checks = [c for c in registered_checks()
              if args.match in c.name or args.match in _MODULE_OF.get(c.name, "")]
    if not checks:
        print(f"no registered check matches {args.match!r}", file=sys.stderr)
        return 2
    table = run_checks(checks, devices=args.device, dtypes=args.dtype)
    print(table.to_text())
    for row in table.failures:
        print(f"FAIL {row.check} on {row.device}/{row.dtype}: {row.detail}", file=sys.stderr)
    if not table.failures and not any(row.passed for row in table.rows):
        # a run that compared nothing proves nothing: every row was skipped
        print("no comparison ran: every row was skipped (a device this machine lacks, or a "
              "dtype these checks do not support); nothing was verified", file=sys.stderr)
        return 3
    return 0 if table.ok else 1


if __name__ == "__main__":
    # Run through the imported module so that checks registered by `helpers.*` are visible here.
    from helpers import verify as _verify

    sys.exit(_verify.main())
