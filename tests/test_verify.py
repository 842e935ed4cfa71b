import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import verify as V
from helpers.losses import softplus


def randn(generator):
    return (torch.randn(50, 3, generator=generator, dtype=torch.float64),)


def run(ours, reference=torch.tanh, inputs=randn, **kwargs):
    return V.run_checks([V.Check("check", ours, reference, inputs, **kwargs)])


def cpu_rows(table):
    return [r for r in table.rows if r.device == "cpu"]


def test_a_correct_implementation_passes_every_cpu_row():
    table = run(lambda x: torch.sinh(x) / torch.cosh(x), grad=True, dtypes=("float64", "float32"))
    rows = cpu_rows(table)
    assert [(r.check, r.dtype) for r in rows] == [
        ("check", "float64"), ("check [grad]", "float64"), ("check", "float32"),
        ("check [grad]", "float32")]
    assert all(r.passed for r in rows), table
    assert rows[0].max_abs_err < 1e-14 and rows[0].tolerance == V.TOLERANCES[torch.float64]


def test_a_wrong_implementation_fails_and_raises_with_details():
    def wrong(x):  # a sign error on one element only
        y = torch.tanh(x)
        y[3, 1] = -y[3, 1]
        return y

    table = run(wrong)
    assert all(r.failed for r in cpu_rows(table))
    with pytest.raises(AssertionError) as raised:
        table.raise_on_failure()
    message = str(raised.value)
    assert "check on cpu/float64" in message and "output[3, 1]" in message
    assert "ours=" in message and "reference=" in message and "allowed" in message


def test_verify_raises_and_returns_the_table_when_green():
    table = V.verify(torch.tanh, torch.tanh, randn, name="tanh vs itself")
    assert isinstance(table, V.VerificationTable) and table.ok
    with pytest.raises(V.VerificationError, match="tanh plus one on cpu/float64"):
        V.verify(lambda x: torch.tanh(x) + 1e-9, torch.tanh, randn, name="tanh plus one")


def test_float32_arithmetic_does_not_pass_as_float64():
    def in_float32(x):
        return torch.tanh(x.float()).to(x.dtype)

    rows = {r.dtype: r for r in cpu_rows(run(in_float32))}
    assert rows["float64"].failed
    assert rows["float32"].passed


def test_a_tolerance_too_loose_for_float64_is_refused():
    with pytest.raises(ValueError, match="float32 computation would pass as float64"):
        V.Check("loose", torch.tanh, torch.tanh, randn,
                tolerances={torch.float64: V.Tolerance(rtol=1e-4, atol=0)})
    V.Check("fine", torch.tanh, torch.tanh, randn,
            tolerances={"float64": V.Tolerance(rtol=1e-9, atol=1e-12)})


def test_tolerance_override_is_used():
    nudged = run(lambda x: torch.tanh(x) * (1 + 1e-10),
                 tolerances={torch.float64: V.Tolerance(rtol=1e-9, atol=0)})
    assert cpu_rows(nudged)[0].passed
    assert cpu_rows(run(lambda x: torch.tanh(x) * (1 + 1e-10)))[0].failed


def test_absent_devices_are_skipped_rows_never_passes():
    table = run(torch.tanh)
    for device_type, label in (("cuda", "CUDA"), ("mps", "MPS")):
        rows = [r for r in table.rows if r.device == device_type]
        if not V.is_available(device_type):
            assert [r.verdict for r in rows] == [f"skipped: no {label}"]
            assert not rows[0].passed


@pytest.mark.parametrize("wrong, complaint", [
    (lambda x: torch.tanh(x).unsqueeze(-1), "shape (50, 3, 1), the reference (50, 3)"),
    (lambda x: torch.tanh(x).double(), "dtype float64, the reference float32"),
    (lambda x: (torch.tanh(x), x), "ours returned"),
    (lambda x: None, "ours returned NoneType"),
])
def test_structural_differences_fail_with_a_reason(wrong, complaint):
    row = [r for r in cpu_rows(run(wrong)) if r.dtype == "float32"][0]
    assert row.failed and complaint in row.detail


def test_an_exception_in_ours_becomes_a_failed_row():
    def broken(x):
        raise ValueError("expected a tensor")

    row = cpu_rows(run(broken))[0]
    assert row.failed and row.detail == "ours raised ValueError: expected a tensor"


def test_nan_and_inf_must_match_in_position():
    def special(generator):
        return (torch.tensor([1.0, math.nan, math.inf, -math.inf], dtype=torch.float64),)

    assert cpu_rows(run(lambda x: x.clone(), lambda x: x.clone(), special))[0].passed
    assert cpu_rows(run(lambda x: x.nan_to_num(), lambda x: x.clone(), special))[0].failed
    assert cpu_rows(run(lambda x: -x, lambda x: x.clone(), special))[0].failed


def test_integer_outputs_must_be_exactly_equal():
    assert cpu_rows(run(lambda x: x.argmax(1), lambda x: x.argmax(1)))[0].passed
    def off_by_one(x):
        labels = x.argmax(1)
        labels[7] += 1
        return labels

    row = cpu_rows(run(off_by_one, lambda x: x.argmax(1)))[0]
    assert row.failed and "output[7]" in row.detail


def test_gradient_rows_catch_a_wrong_derivative():
    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tanh(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (1 - torch.tanh(x))  # forgot the square

    rows = {r.check: r for r in cpu_rows(run(WrongBackward.apply, grad=True))
            if r.dtype == "float64"}
    assert rows["check"].passed
    assert rows["check [grad]"].failed


def test_a_missing_half_kernel_in_the_reference_is_a_stated_skip():
    def reference(x):
        if x.dtype == torch.float16:
            raise RuntimeError('"tanh_cpu" not implemented for \'Half\'')
        return torch.tanh(x)

    row = [r for r in cpu_rows(run(torch.tanh, reference)) if r.dtype == "float16"][0]
    assert row.verdict == "skipped: reference has no float16 kernel on cpu"


HALF_KERNEL_MISSING = '"tanh_cpu" not implemented for \'Half\''


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("error", [NotImplementedError, RuntimeError])
def test_our_error_that_reads_like_a_missing_kernel_is_a_failure(error, grad):
    """Only the reference may lack a kernel: the same words raised by ours are a bug of ours."""
    def ours(x):
        if x.dtype == torch.float16:
            raise error(HALF_KERNEL_MISSING)
        return torch.tanh(x)

    rows = [r for r in cpu_rows(run(ours, grad=grad)) if r.dtype == "float16"]
    assert [r.verdict for r in rows] == ["FAIL"] * (2 if grad else 1)
    assert rows[0].detail == f"ours raised {error.__name__}: {HALF_KERNEL_MISSING}"
    assert [r.verdict for r in cpu_rows(run(ours, grad=grad)) if r.dtype != "float16"] == [
        "pass"] * (4 if grad else 2)


@pytest.mark.parametrize("dtype, message", [
    ("float32", HALF_KERNEL_MISSING),  # a missing half kernel is no excuse on float32
    ("float16", "tanh does not support sparse inputs"),  # nothing about the dtype
    ("float16", "ValueError-like words: not implemented for this shape"),
    # another dtype whose name contains this one's: 'BFloat16' holds 'Float', bfloat16 float16
    ("float32", "\"tanh_cpu\" not implemented for 'BFloat16'"),
    ("float16", "Unsupported dtype bfloat16"),
])
def test_a_reference_error_that_is_not_about_this_dtype_is_a_failure(dtype, message):
    def reference(x):
        if V.dtype_name(x.dtype) == dtype:
            raise RuntimeError(message)
        return torch.tanh(x)

    row = [r for r in cpu_rows(run(torch.tanh, reference)) if r.dtype == dtype][0]
    assert row.verdict == "FAIL" and row.detail == f"reference raised RuntimeError: {message}"


def test_numpy_reference_and_keyword_inputs():
    def inputs(generator):
        return {"a": torch.rand(20, generator=generator, dtype=torch.float64), "b": 3}

    table = run(lambda a, b: (a * b).sum(), V.numpy_reference(lambda a, b: np.sum(a * b)), inputs,
                dtypes=("float64",))
    assert cpu_rows(table)[0].passed


def test_text_and_html_render_every_row():
    table = run(torch.tanh)
    text, page = table.to_text(), table._repr_html_()
    assert text.splitlines()[0].split() [:3] == ["check", "device", "dtype"]
    assert len(text.splitlines()) == len(table) + 3  # header, rule, rows, summary
    assert page.count("<tr>") == len(table) + 1
    assert "3 passed, 0 failed" in text and "3 passed, 0 failed" in page


@pytest.mark.parametrize("value, bucket", [(0.0, "0"), (3e-17, "< 1e-16"), (1e-16, "< 1e-15"),
                                           (0.5, "< 1e0"), (None, "-"), (math.inf, "inf")])
def test_error_buckets(value, bucket):
    assert V.error_bucket(value) == bucket


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="floating dtype .* but got 'int8'"):
        V.Check("x", torch.tanh, torch.tanh, randn, dtypes=("int8",))
    with pytest.raises(TypeError, match="expected `reference` to be callable"):
        V.Check("x", torch.tanh, "tanh", randn)
    with pytest.raises(ValueError, match="expected devices among"):
        V.run_checks([], devices=["tpu"])


def test_the_registry_holds_softplus_and_rejects_a_second_check_of_that_name():
    names = [c.name for c in V.registered_checks()]
    assert "softplus" in names
    with pytest.raises(ValueError, match="registered already"):
        V.register(V.Check("softplus", softplus, F.softplus, randn))


def test_command_line_runs_filters_and_exits_by_verdict(capsys):
    assert V.main(["-k", "softplus", "--device", "cpu", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "softplus" in out and "float32" not in out and "cuda" not in out
    assert V.main(["-k", "no such check"]) == 2


def test_command_line_selects_the_checks_of_a_module(capsys):
    assert V.main(["-k", "calibration", "--device", "cpu", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "calibration_curve" in out and "fit_platt" in out and "softplus" not in out


def test_command_line_exit_code_is_one_on_failure(monkeypatch, capsys):
    bad = V.Check("always wrong", lambda x: x + 1, lambda x: x, randn)
    monkeypatch.setattr(V, "registered_checks", lambda: [bad])
    assert V.main([]) == 1
    assert "FAIL always wrong on cpu/float64" in capsys.readouterr().err


def test_reversed_numpy_views_and_numpy_scalars_from_a_reference():
    flipped = run(lambda x: x.flip(0), V.numpy_reference(lambda x: x[::-1]), dtypes=("float64",))
    assert cpu_rows(flipped)[0].passed
    scalar = run(lambda x: x.sum(), V.numpy_reference(lambda x: np.float64(x.sum())),
                 dtypes=("float64",))
    assert cpu_rows(scalar)[0].passed


def test_a_device_independent_check_says_so_on_other_devices():
    table = run(torch.tanh, devices=("cpu",))
    assert [r.verdict for r in table.rows if r.device != "cpu"] == [
        "skipped: cpu-only check", "skipped: cpu-only check"]
    assert all(r.passed for r in cpu_rows(table))


def test_command_line_fails_when_every_row_was_skipped(capsys):
    # softplus is not checked in bfloat16 (every row skipped): a run that checked nothing fails
    assert V.main(["-k", "softplus", "--dtype", "bfloat16"]) == 3
    assert "nothing was verified" in capsys.readouterr().err
