"""helpers.losses against torch.nn.functional: values, gradients, errors, and caught mutations."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import losses as L
from helpers.verify import TOLERANCES

REDUCTIONS = ("none", "mean", "sum")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(ours, theirs, dtype):
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(ours, theirs, rtol=tol.rtol, atol=tol.atol, equal_nan=True)


def values_and_grads(loss, inputs, **kwargs):
    """The loss, and its gradient w.r.t. every floating input (same random cotangent)."""
    inputs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    value = loss(*inputs, **kwargs)
    cotangent = torch.linspace(-1, 2, value.numel(), dtype=value.dtype).reshape(value.shape)
    differentiable = [x for x in inputs if x.requires_grad]
    grads = torch.autograd.grad((value * cotangent).sum(), differentiable, allow_unused=True)
    return value.detach(), [g if g is not None else torch.zeros_like(x)
                            for g, x in zip(grads, differentiable)]


def compare(ours, theirs, inputs, dtype, **kwargs):
    value, grads = values_and_grads(ours, inputs, **kwargs)
    ref_value, ref_grads = values_and_grads(theirs, inputs, **kwargs)
    assert value.dtype == ref_value.dtype and value.shape == ref_value.shape
    assert_same(value, ref_value, dtype)
    for grad, ref_grad in zip(grads, ref_grads):
        assert_same(grad, ref_grad, dtype)


# --------------------------------------------------------------------------------------------
# Random cases
# --------------------------------------------------------------------------------------------

dtypes = st.sampled_from([torch.float64, torch.float32])


@st.composite
def classification_cases(draw):
    """Logits of shape (C,), (N, C) or (N, C, d...), a target of either kind, and options."""
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    dtype = draw(dtypes)
    n_classes = draw(st.integers(2, 6))
    batch = draw(st.sampled_from([(), (draw(st.integers(1, 6)),)]))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2))) if batch else ()
    shape = batch + (n_classes,) + extra
    scale = draw(st.sampled_from([1.0, 5.0, 30.0]))
    logits = (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    options = {"reduction": draw(st.sampled_from(REDUCTIONS)),
               "label_smoothing": draw(st.sampled_from([0.0, 0.1, 0.37, 1.0]))}
    if draw(st.booleans()):
        options["weight"] = (0.1 + torch.rand(n_classes, generator=g, dtype=torch.float64)
                             ).to(dtype)
    if draw(st.booleans()):  # class probabilities
        target = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), dim=len(
            batch) and 1).to(dtype)
    else:
        target = torch.randint(0, n_classes, batch + extra, generator=g)
        ignore = draw(st.sampled_from([None, -100, 0, "all"]))
        if ignore == "all":
            target = torch.full_like(target, -100)
        elif ignore is not None:
            options["ignore_index"] = ignore
            if ignore == -100 and target.dim() and target.numel() > 1:
                target.view(-1)[::2] = -100
    return logits, target, dtype, options


@FAST
@given(classification_cases())
def test_cross_entropy_matches_torch(case):
    logits, target, dtype, options = case
    compare(L.cross_entropy, F.cross_entropy, [logits, target], dtype, **options)


@FAST
@given(classification_cases())
def test_cross_entropy_grad_by_hand_matches_autograd(case):
    logits, target, dtype, options = case
    x = logits.detach().clone().requires_grad_()
    loss = F.cross_entropy(x, target, **options)
    grad_output = torch.linspace(-1, 2, loss.numel(), dtype=dtype).reshape(loss.shape)
    (expected,) = torch.autograd.grad(loss, x, grad_output)
    by_hand = L.cross_entropy_grad(logits, target, grad_output=grad_output, **options)
    assert_same(by_hand, expected, dtype)


@st.composite
def regression_cases(draw):
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=3)))
    dtype = draw(dtypes)
    x, y = (torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(2))
    return x, y, dtype, draw(st.sampled_from(REDUCTIONS))


@FAST
@given(regression_cases())
def test_mse_loss_matches_torch(case):
    x, y, dtype, reduction = case
    compare(L.mse_loss, F.mse_loss, [x, y], dtype, reduction=reduction)


@FAST
@given(regression_cases())
def test_mse_loss_grad_by_hand_matches_autograd(case):
    x, y, dtype, reduction = case
    leaf = x.clone().requires_grad_()
    loss = F.mse_loss(leaf, y, reduction=reduction)
    grad_output = torch.linspace(-1, 2, loss.numel(), dtype=dtype).reshape(loss.shape)
    (expected,) = torch.autograd.grad(loss, leaf, grad_output)
    assert_same(L.mse_loss_grad(x, y, reduction, grad_output=grad_output), expected, dtype)


def binary_case(seed, dtype, reduction, weighted, pos_weighted, scale):
    """Logits of a given scale, probability targets, and the options drawn."""
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(5, 3, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.rand(5, 3, generator=g, dtype=torch.float64).to(dtype)
    options = {"reduction": reduction}
    if weighted:
        options["weight"] = torch.rand(5, 1, generator=g, dtype=torch.float64).to(dtype)
    if pos_weighted:
        options["pos_weight"] = (0.5 + 3 * torch.rand(3, generator=g, dtype=torch.float64)
                                 ).to(dtype)
    return x, y, options


@FAST
@given(st.integers(0, 2**31 - 1), dtypes, st.sampled_from(REDUCTIONS), st.booleans(),
       st.booleans(), st.sampled_from([1.0, 10.0, 60.0]))
def test_binary_cross_entropy_with_logits_matches_torch(seed, dtype, reduction, weighted,
                                                        pos_weighted, scale):
    x, y, options = binary_case(seed, dtype, reduction, weighted, pos_weighted, scale)
    compare(L.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, [x, y],
            dtype, **options)


@FAST
@given(st.integers(0, 2**31 - 1), dtypes, st.sampled_from(REDUCTIONS), st.booleans(),
       st.booleans(), st.sampled_from([1.0, 10.0, 60.0]))
def test_binary_cross_entropy_with_logits_grad_by_hand_matches_autograd(
        seed, dtype, reduction, weighted, pos_weighted, scale):
    x, y, options = binary_case(seed, dtype, reduction, weighted, pos_weighted, scale)
    leaf = x.clone().requires_grad_()
    loss = F.binary_cross_entropy_with_logits(leaf, y, **options)
    grad_output = torch.linspace(-1, 2, loss.numel(), dtype=dtype).reshape(loss.shape)
    (expected,) = torch.autograd.grad(loss, leaf, grad_output)
    by_hand = L.binary_cross_entropy_with_logits_grad(x, y, grad_output=grad_output, **options)
    assert_same(by_hand, expected, dtype)


@FAST
@given(st.integers(0, 2**31 - 1), dtypes, st.integers(0, 2), st.sampled_from([1.0, 1e3]))
def test_softmax_and_log_softmax_match_torch(seed, dtype, dim, scale):
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(3, 4, 5, generator=g, dtype=torch.float64)).to(dtype)
    compare(L.softmax, F.softmax, [x], dtype, dim=dim)
    compare(L.log_softmax, F.log_softmax, [x], dtype, dim=dim)


def test_half_precision_is_computed_like_torch():
    x = torch.randn(8, 5, dtype=torch.float64).half()
    assert L.log_softmax(x, dim=1).dtype == torch.float16
    assert L.cross_entropy(x, torch.arange(8) % 5).dtype == torch.float16
    torch.testing.assert_close(L.softplus(x), F.softplus(x))


def test_softmax_dtype_argument_casts_first():
    x = torch.randn(4, 3)
    assert L.softmax(x, dim=1, dtype=torch.float64).dtype == torch.float64
    torch.testing.assert_close(L.log_softmax(x, 1, dtype=torch.float64),
                               F.log_softmax(x, 1, dtype=torch.float64), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Stability: where naive formulas break
# --------------------------------------------------------------------------------------------


def test_log_softmax_is_finite_at_huge_logits():
    x = torch.tensor([[1000.0, 0.0, -1000.0], [-1e4, -1e4 + 1, -1e4 + 2]])
    ours = L.log_softmax(x, dim=1)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, F.log_softmax(x, dim=1))
    naive = torch.log(torch.exp(x) / torch.exp(x).sum(1, keepdim=True))
    assert not torch.isfinite(naive).all()


def test_rows_of_minus_infinity_give_nan_like_torch():
    x = torch.tensor([[-math.inf, -math.inf], [0.0, -math.inf]])
    torch.testing.assert_close(L.log_softmax(x, 1), F.log_softmax(x, 1), equal_nan=True)


def test_an_impossible_other_class_does_not_poison_the_loss():
    x = torch.tensor([[0.0, -math.inf, 1.0]])
    target = torch.tensor([2])
    torch.testing.assert_close(L.cross_entropy(x, target), F.cross_entropy(x, target))


# --------------------------------------------------------------------------------------------
# Errors that teach
# --------------------------------------------------------------------------------------------

X = torch.randn(4, 3)
CLASSES = torch.tensor([0, 2, 1, 0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: L.mse_loss(torch.randn(4), torch.randn(4, 1)), ValueError,
     r"expected target of the input's shape \(4,\), but got \(4, 1\).*\(N, N\) loss"),
    (lambda: L.mse_loss(torch.randn(4), torch.arange(4)), TypeError,
     "expected target of a floating dtype, but got torch.int64"),
    (lambda: L.mse_loss(X, X, reduction="avg"), ValueError,
     r"expected reduction to be one of \('none', 'mean', 'sum'\), but got 'avg'"),
    (lambda: L.mse_loss([1.0], X), TypeError, "expected input to be a torch.Tensor, but got list"),
    (lambda: L.cross_entropy(X, CLASSES.float()), TypeError,
     r"expected class indices of dtype torch.long \(or torch.uint8\) of shape \(4,\).*but "
     r"got torch.float32 of shape \(4,\)"),
    (lambda: L.cross_entropy(X, CLASSES.int()), TypeError, "but got torch.int32 of shape"),
    (lambda: L.softplus(torch.arange(3)), TypeError, "expected input of a floating dtype"),
    (lambda: L.cross_entropy(X, torch.tensor([0, 3, 1, 0])), ValueError,
     r"expected class indices in \[0, 2\] \(or ignore_index=-100\), but got 3"),
    (lambda: L.cross_entropy(X, torch.tensor([0, -1, 1, 0])), ValueError,
     r"expected class indices in \[0, 2\].*but got -1"),
    (lambda: L.cross_entropy(X, torch.rand(4, 4)), ValueError,
     r"or class probabilities of the input's shape \(4, 3\), but got torch.float32 of shape "
     r"\(4, 4\)"),
    (lambda: L.cross_entropy(X, CLASSES[:3]), ValueError,
     r"expected class indices .* of shape \(4,\).* but got torch.int64 of shape \(3,\)"),
    (lambda: L.cross_entropy(X, CLASSES, reduction="batchmean"), ValueError,
     "expected reduction to be one of"),
    (lambda: L.cross_entropy(X, CLASSES, weight=torch.ones(4)), ValueError,
     r"expected weight of shape \(3,\), one per class, but got \(4,\)"),
    (lambda: L.cross_entropy(X, CLASSES, weight=torch.ones(3, dtype=torch.float64)), TypeError,
     "expected weight of the input's dtype torch.float32, but got torch.float64"),
    (lambda: L.cross_entropy(X, CLASSES, label_smoothing=1.5), ValueError,
     r"expected label_smoothing in \[0, 1\], but got 1.5"),
    (lambda: L.cross_entropy(X, torch.softmax(X, 1), ignore_index=1), ValueError,
     "ignore_index=1 applies to class-index targets only"),
    (lambda: L.cross_entropy(torch.tensor(1.0), CLASSES), ValueError, "but got a scalar"),
    (lambda: L.cross_entropy(X.long(), CLASSES), TypeError,
     "expected input of a floating dtype, but got torch.int64"),
    (lambda: L.binary_cross_entropy_with_logits(X, torch.rand(4, 1)), ValueError,
     r"expected target of the input's shape \(4, 3\), but got \(4, 1\)"),
    (lambda: L.binary_cross_entropy_with_logits(X, torch.rand(4, 3), pos_weight=torch.ones(4)),
     ValueError, r"expected pos_weight to broadcast to the input's shape \(4, 3\) \(e.g. shape "
     r"\(3,\)\), but got \(4,\)"),
    (lambda: L.binary_cross_entropy_with_logits(X, torch.rand(4, 3), weight=torch.ones(2, 4, 3)),
     ValueError, r"expected weight to broadcast to the input's shape \(4, 3\)"),
])
def test_bad_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_accepted_like_torch_byte_targets_negative_ignore_index_and_dtype_promotion():
    probabilities = torch.softmax(torch.randn(4, 3, dtype=torch.float64), dim=1)
    pairs = [
        (lambda f: f(X, CLASSES.to(torch.uint8))),
        (lambda f: f(X, probabilities, ignore_index=-1)),
    ]
    for call in pairs:
        torch.testing.assert_close(call(L.cross_entropy), call(F.cross_entropy))
    double = torch.rand(4, 3, dtype=torch.float64)
    bce = [(lambda f: f(X, double)), (lambda f: f(X, X.sigmoid(), pos_weight=double[0])),
           (lambda f: f(X, X.sigmoid(), weight=double))]
    for call in bce:
        ours, theirs = call(L.binary_cross_entropy_with_logits), call(
            F.binary_cross_entropy_with_logits)
        assert ours.dtype == theirs.dtype
        torch.testing.assert_close(ours, theirs)


def test_a_row_holding_plus_infinity_is_nan_like_torch():
    row = torch.tensor([[1.0, math.inf, 0.0]])
    for ours, theirs in ((L.softmax, F.softmax), (L.log_softmax, F.log_softmax)):
        torch.testing.assert_close(ours(row, dim=1), theirs(row, dim=1), equal_nan=True)


def test_the_refused_mse_broadcast_really_is_what_torch_does():
    x, y = torch.randn(5), torch.randn(5, 1)
    with pytest.warns(UserWarning, match="target size"):
        broadcast = F.mse_loss(x, y, reduction="none")
    assert broadcast.shape == (5, 5)


# --------------------------------------------------------------------------------------------
# Mutations the tests must catch
# --------------------------------------------------------------------------------------------


def log_softmax_without_max(input, dim, dtype=None):
    return input - torch.log(torch.exp(input).sum(dim=dim, keepdim=True))


CROSS_ENTROPY = L.cross_entropy


def cross_entropy_mean_over_classes(input, target, reduction="mean", **options):
    """'mean' also divided by the number of classes: a mean over the wrong axis."""
    loss = CROSS_ENTROPY(input, target, reduction="none", **options)
    return loss.mean() / input.shape[-1] if reduction == "mean" else L._reduce(loss, reduction)


def cross_entropy_mean_over_count(input, target, weight=None, ignore_index=-100,
                                  reduction="mean", label_smoothing=0.0):
    """'mean' as a plain average, ignoring torch's weighted normalisation."""
    loss = CROSS_ENTROPY(input, target, weight, ignore_index, "none", label_smoothing)
    return loss.mean() if reduction == "mean" else L._reduce(loss, reduction)


def mse_divided_twice(input, target, reduction="mean"):
    loss = L.mse_loss(input, target, reduction)
    return loss / input.shape[0] if reduction == "mean" else loss


def grad_without_scaling(input, target, reduction="mean", **options):
    return L.cross_entropy_grad(input, target, reduction="sum", **options)


def bce_grad_pos_weight_on_everything(input, target, pos_weight):
    """pos_weight multiplying sigma(x) - y as a whole, not only the positive term."""
    return pos_weight * (torch.sigmoid(input) - target) / input.numel()


def fails(check) -> bool:
    try:
        check()
    except AssertionError:
        return True
    return False


def test_mutations_are_caught():
    g = torch.Generator().manual_seed(0)
    big = 1000 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    classes = torch.tensor([0, 1, 2, 3, 1, 2])
    weight = torch.tensor([0.2, 1.0, 3.0, 0.5], dtype=torch.float64)
    f64 = torch.float64
    assert not fails(lambda: compare(L.log_softmax, F.log_softmax, [big], f64, dim=1))
    assert fails(lambda: compare(log_softmax_without_max, F.log_softmax, [big], f64, dim=1))
    assert fails(lambda: compare(cross_entropy_mean_over_classes, F.cross_entropy,
                                 [x, classes], f64))
    assert not fails(lambda: compare(L.cross_entropy, F.cross_entropy, [x, classes], f64,
                                     weight=weight))
    assert fails(lambda: compare(cross_entropy_mean_over_count, F.cross_entropy, [x, classes],
                                 f64, weight=weight))
    assert fails(lambda: compare(mse_divided_twice, F.mse_loss, [x, y], f64))
    autograd = torch.func.grad(F.cross_entropy)(x, classes)
    assert not fails(lambda: assert_same(L.cross_entropy_grad(x, classes), autograd, f64))
    assert fails(lambda: assert_same(grad_without_scaling(x, classes), autograd, f64))
    labels, pos_weight = (y > 0).double(), torch.tensor([1.0, 2.0, 3.0, 0.5], dtype=f64)
    autograd = torch.func.grad(F.binary_cross_entropy_with_logits)(x, labels, pos_weight=pos_weight)
    assert not fails(lambda: assert_same(L.binary_cross_entropy_with_logits_grad(
        x, labels, pos_weight=pos_weight), autograd, f64))
    assert fails(lambda: assert_same(bce_grad_pos_weight_on_everything(x, labels, pos_weight),
                                     autograd, f64))


def test_the_property_test_itself_rejects_a_mutation(monkeypatch):
    """Fed the mean-over-count mutation, the hypothesis test finds a failing example."""
    monkeypatch.setattr(L, "cross_entropy", cross_entropy_mean_over_count)
    with pytest.raises(AssertionError):
        test_cross_entropy_matches_torch()
