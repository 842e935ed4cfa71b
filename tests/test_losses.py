"""helpers.losses against torch.nn.functional: values, gradients, errors, and caught mutations."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import losses as L
from helpers.verify import TOLERANCES, run_checks

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


SOFTMAXES = [(L.softmax, F.softmax), (L.log_softmax, F.log_softmax)]


@pytest.mark.parametrize("ours, theirs", SOFTMAXES, ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("x, dtype", [
    (torch.tensor([[1, 2, 3], [-4, 0, 9]]), torch.float32),
    (torch.tensor([[1, 2, 3], [-4, 0, 9]]), torch.float64),
    (torch.tensor([[True, False, True]]), torch.float32),
    # cast first, then compute: 2049 and 2048 are one float16, so the two classes tie
    (torch.tensor([[2049, 2048, 0]]), torch.float16),
    (torch.tensor([[2049.0, 2048.0, 0.1]], dtype=torch.float64), torch.float16),
    (torch.tensor([[2049.0, 2048.0, 0.1]], dtype=torch.float64), torch.bfloat16),
], ids=["int64 to float32", "int64 to float64", "bool to float32", "int64 to float16",
        "float64 to float16", "float64 to bfloat16"])
def test_the_dtype_argument_casts_before_anything_else(ours, theirs, x, dtype):
    """As torch: `dtype` casts the input first, so integer inputs are accepted and a float64
    input is rounded to float16 before the exponentials (then computed in float32)."""
    result, expected = ours(x, 1, dtype=dtype), theirs(x, 1, dtype=dtype)
    assert result.dtype == expected.dtype == dtype
    torch.testing.assert_close(result, expected, rtol=TOLERANCES[dtype].rtol,
                               atol=TOLERANCES[dtype].atol)


@pytest.mark.parametrize("ours, theirs", SOFTMAXES, ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", [((3, 0), 1), ((3, 0), -1), ((0, 3), 1), ((0,), 0),
                                        ((2, 0, 4), 1), ((2, 3, 0), 2)])
def test_an_empty_dimension_gives_an_empty_result_as_in_torch(ours, theirs, shape, dim):
    x = torch.zeros(shape, dtype=torch.float64)
    compare(ours, theirs, [x], torch.float64, dim=dim)


@pytest.mark.parametrize("ours, theirs", SOFTMAXES, ids=["softmax", "log_softmax"])
def test_the_class_dimension_is_required(ours, theirs):
    """torch's dim=None is deprecated: it warns and guesses dim 0 for a 3-D input, the batch of
    an (N, C, L) tensor; ours refuses."""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        guessed = theirs(x, None)
    torch.testing.assert_close(guessed, theirs(x, 0), rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"expected dim to be an int, but got None; .*needs the "
                                        r"dimension of the classes \(dim=1 for logits of shape "
                                        r"\(N, C\)\)\. torch's dim=None is deprecated"):
        ours(x, None)


@pytest.mark.parametrize("ours, theirs", SOFTMAXES, ids=["softmax", "log_softmax"])
def test_integers_without_a_dtype_and_integer_dtypes_are_refused(ours, theirs):
    with pytest.raises(TypeError, match=r"expected input of a floating dtype, but got "
                                        r"torch.int64; pass dtype=torch.float32"):
        ours(torch.arange(3), 0)
    with pytest.raises(NotImplementedError):  # torch refuses too, in its kernel
        theirs(torch.arange(3), 0)
    with pytest.raises(TypeError, match="expected dtype to be a floating torch.dtype, but got "
                                        "torch.int64"):
        ours(torch.rand(3), 0, dtype=torch.long)
    with pytest.raises(IndexError, match="Dimension out of range"):  # torch's own message
        ours(torch.rand(2, 3), 2)


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


HUGE_LOGITS = torch.tensor([[1e3, 0.0, -1e3], [-1e4, -1e4 + 1, -1e4 + 2], [0.0, 1e3, 2e3],
                            [-1e4, 0.0, 1e4]], dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("target, options", [
    (torch.tensor([0, 1, 2, 1]), {}),
    (torch.tensor([2, 0, 0, 0]), {}),  # the least likely class: -log p = 2000, 2, 2000, 2e4
    (torch.tensor([1, 2, 0, 0]), {"label_smoothing": 0.1}),
    (torch.tensor([1, 2, 0, 0]), {"weight": torch.tensor([0.5, 1.0, 2.0]), "reduction": "none"}),
    (torch.softmax(torch.tensor([[1.0, 2.0, 3.0]] * 4, dtype=torch.float64), 1), {}),
], ids=["classes", "least likely classes", "label smoothing", "weights", "probabilities"])
def test_cross_entropy_at_huge_logits_is_finite_and_torchs(target, options, dtype):
    """Logits of 1e3 and -1e4: a log-softmax built as log(softmax(x)) gives log 0 = -inf (and
    0 * -inf = NaN for the other classes); the log-sum-exp form stays finite, as torch's."""
    x = HUGE_LOGITS.to(dtype)
    target = target.to(dtype) if target.is_floating_point() else target
    options = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in options.items()}
    ours = L.cross_entropy(x, target, **options)
    assert torch.isfinite(ours).all()
    compare(L.cross_entropy, F.cross_entropy, [x, target], dtype, **options)


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


# --------------------------------------------------------------------------------------------
# Focal loss against torchvision
# --------------------------------------------------------------------------------------------

TORCHVISION_FOCAL = L.torchvision_sigmoid_focal_loss


def focal_case(seed, dtype, scale, soft):
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(6, 4, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.rand(6, 4, generator=g, dtype=torch.float64)
    return x, (y if soft else (y < 0.3).double()).to(dtype)


@FAST
@given(st.integers(0, 2**31 - 1), dtypes, st.sampled_from(REDUCTIONS),
       st.sampled_from([0.25, 0.0, 1.0, 0.6, -1]), st.sampled_from([0, 1, 1.5, 2, 3.5]),
       st.sampled_from([1.0, 4.0, 30.0]), st.booleans())
def test_sigmoid_focal_loss_matches_torchvision(seed, dtype, reduction, alpha, gamma, scale,
                                                soft):
    x, y = focal_case(seed, dtype, scale, soft)
    compare(L.sigmoid_focal_loss, TORCHVISION_FOCAL, [x, y], dtype, reduction=reduction,
            alpha=alpha, gamma=gamma)


@FAST
@given(st.integers(0, 2**31 - 1), dtypes, st.sampled_from(REDUCTIONS),
       st.sampled_from([0.1, 0.5, 0.9]), st.booleans())
def test_sigmoid_focal_loss_with_gamma_below_one_matches_torchvision(seed, dtype, reduction,
                                                                     gamma, soft):
    """Logits that do not saturate (where they do, torchvision's gradient is NaN: see below).

    In float32 the reference is torchvision computed in float64 and rounded: torchvision's own
    float32 1 - p_t = 1 - (1 - p) loses digits to cancellation once p is small (5e-4 relative
    at x = -9, y = 0), and with gamma < 1 the factor (1 - p_t)^gamma is not small enough to hide
    it; our sigma(x) keeps them."""
    x, y = focal_case(seed, dtype, 3.0, soft)

    def reference(inputs, targets, **options):
        return TORCHVISION_FOCAL(inputs.double(), targets.double(), **options).to(dtype)

    compare(L.sigmoid_focal_loss, reference, [x, y], dtype, reduction=reduction, gamma=gamma)


def test_torchvisions_float32_loses_digits_that_ours_keeps():
    x, y = torch.tensor([-9.0]), torch.tensor([0.0])
    exact = L.sigmoid_focal_loss(x.double(), y.double(), gamma=0.1)
    ours, theirs = L.sigmoid_focal_loss(x, y, gamma=0.1), TORCHVISION_FOCAL(x, y, gamma=0.1)
    assert abs(ours.double() / exact - 1) < 1e-6 < 1e-4 < abs(theirs.double() / exact - 1)


def test_default_arguments_are_torchvisions():
    x, y = focal_case(0, torch.float64, 3.0, False)
    ours, theirs = L.sigmoid_focal_loss(x, y), TORCHVISION_FOCAL(x, y)
    assert ours.shape == x.shape  # reduction 'none' by default, unlike torch.nn.functional
    assert_same(ours, theirs, torch.float64)
    assert_same(ours, TORCHVISION_FOCAL(x, y, alpha=0.25, gamma=2, reduction="none"),
                torch.float64)


def test_mixed_dtypes_promote_like_torchvision():
    x, y = focal_case(1, torch.float32, 3.0, True)
    ours, theirs = L.sigmoid_focal_loss(x, y.double()), TORCHVISION_FOCAL(x, y.double())
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_without_focus_and_weighting_it_is_binary_cross_entropy(dtype):
    x, y = focal_case(2, dtype, 8.0, True)
    for reduction in REDUCTIONS:
        focal = L.sigmoid_focal_loss(x, y, alpha=-1, gamma=0, reduction=reduction)
        assert torch.equal(focal, L.binary_cross_entropy_with_logits(x, y, reduction=reduction))
        assert_same(focal, F.binary_cross_entropy_with_logits(x, y, reduction=reduction), dtype)
    # gamma = 0 alone: BCE weighted by alpha_t = alpha y + (1 - alpha)(1 - y)
    labels = (y > 0.5).to(dtype)
    alpha_t = 0.25 * labels + 0.75 * (1 - labels)
    assert_same(L.sigmoid_focal_loss(x, labels, gamma=0),
                F.binary_cross_entropy_with_logits(x, labels, weight=alpha_t, reduction="none"),
                dtype)


def test_easy_examples_are_turned_down():
    """p_t = 0.9 keeps (1 - 0.9)^2 = 1 % of its cross-entropy, p_t = 0.1 keeps 81 %."""
    logits = torch.logit(torch.tensor([0.9, 0.1], dtype=torch.float64))
    ratio = L.sigmoid_focal_loss(logits, torch.ones(2, dtype=torch.float64), alpha=-1) / (
        L.binary_cross_entropy_with_logits(logits, torch.ones(2, dtype=torch.float64),
                                           reduction="none"))
    torch.testing.assert_close(ratio, torch.tensor([0.01, 0.81], dtype=torch.float64))


SATURATING = torch.tensor([-100.0, -30.0, 30.0, 100.0])


def naive_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """The formula as printed, with log(sigmoid): log 0 once sigma(x) rounds to 0 or 1."""
    p = torch.sigmoid(inputs)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return L._reduce(-alpha_t * (1 - p_t) ** gamma * torch.log(p_t), reduction)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_and_right_at_saturating_logits_where_the_naive_formula_is_not(dtype):
    x = torch.cat([SATURATING, 10 * SATURATING]).to(dtype)  # sigma(-1000) is 0 in float64
    for label in (0.0, 1.0):
        y = torch.full_like(x, label)
        ours = L.sigmoid_focal_loss(x, y)
        assert torch.isfinite(ours).all()
        # the exact value where the example is badly wrong: alpha_t |x| (1 - p_t)^2 ~ alpha_t |x|
        wrong = (x > 0) if label == 0 else (x < 0)
        alpha_t = 0.25 if label == 1 else 0.75
        torch.testing.assert_close(ours[wrong], alpha_t * x[wrong].abs())
        compare(L.sigmoid_focal_loss, TORCHVISION_FOCAL, [x, y], dtype)
        naive = naive_focal_loss(x, y)
        assert not torch.isfinite(naive).all()


def test_gradient_stays_finite_where_torchvisions_is_nan():
    """Documented difference: sigma(30) rounds to 1 in float32, torchvision's 1 - p_t is 0,
    and d/dx (1 - p_t)^0.5 is 0.5 * 0^-0.5 * 0 = NaN; ours keeps 1 - p_t = sigma(-30)."""
    x = torch.tensor([30.0, -30.0])
    y = torch.tensor([1.0, 0.0])
    _, (ours,) = values_and_grads(L.sigmoid_focal_loss, [x], targets=y, gamma=0.5)
    _, (theirs,) = values_and_grads(TORCHVISION_FOCAL, [x], targets=y, gamma=0.5)
    assert torch.isfinite(ours).all() and theirs.isnan().all()
    torch.testing.assert_close(ours, torch.zeros(2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype, logit", [(torch.float32, 89.0), (torch.float32, 120.0),
                                          (torch.float64, 710.0), (torch.float64, 1000.0)])
@pytest.mark.parametrize("gamma", [0.1, 0.5, 2.0])
def test_gradient_stays_finite_where_sigmoid_of_minus_x_underflows(dtype, logit, gamma):
    """sigma(-x) is 0 from x = 88.7 in float32 (709 in float64): (1 - p_t)^gamma taken as
    exp(gamma log(1 - p_t)), log(1 - p_t) in log space, never forms 0^gamma (NaN gradient)."""
    x = torch.tensor([logit, -logit, logit, -logit], dtype=dtype)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)  # two easy, two badly wrong
    values, (grad_x, grad_y) = values_and_grads(L.sigmoid_focal_loss, [x, y], gamma=gamma)
    for name, got in (("loss", values), ("gradient w.r.t. x", grad_x),
                      ("gradient w.r.t. y", grad_y)):
        assert torch.isfinite(got).all(), (f"expected a finite {name} at logits +-{logit} in "
                                           f"{dtype}, but got {got.tolist()}")
    # easy examples: loss and gradient 0; badly wrong ones: alpha_t |x|, gradient -+alpha_t
    torch.testing.assert_close(values, torch.tensor([0, 0, 0.75 * logit, 0.25 * logit],
                                                    dtype=dtype))
    cotangent = torch.linspace(-1, 2, 4, dtype=dtype)  # the one values_and_grads applies
    torch.testing.assert_close(grad_x, cotangent * torch.tensor([0, 0, 0.75, -0.25],
                                                                dtype=dtype))


FOCAL_X, FOCAL_Y = torch.randn(4, 3), (torch.rand(4, 3) > 0.5).float()


@pytest.mark.parametrize("call, error, message", [
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y, reduction="avg"), ValueError,
     r"expected reduction to be one of \('none', 'mean', 'sum'\), but got 'avg'"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y[:, :1]), ValueError,
     r"expected targets of the inputs' shape \(4, 3\), but got \(4, 1\)"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y.long()), TypeError,
     "expected targets of a floating dtype, but got torch.int64"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X.long(), FOCAL_Y), TypeError,
     "expected inputs of a floating dtype, but got torch.int64"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X.tolist(), FOCAL_Y), TypeError,
     "expected inputs to be a torch.Tensor, but got list"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y, alpha=1.5), ValueError,
     r"expected alpha in \[0, 1\], or -1 to turn the class weighting off, but got 1.5"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y, alpha=-0.5), ValueError,
     "or -1 to turn the class weighting off, but got -0.5"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y, gamma=-1), ValueError,
     "expected gamma >= 0, but got -1"),
    (lambda: L.sigmoid_focal_loss(FOCAL_X, FOCAL_Y, gamma=math.nan), ValueError,
     "expected gamma >= 0, but got nan"),
])
def test_bad_focal_loss_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("alpha", [1.5, -0.5])
def test_torchvision_refuses_the_same_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        TORCHVISION_FOCAL(FOCAL_X, FOCAL_Y, alpha=alpha)


def focal_with_p_instead_of_p_t(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """(1 - p)^gamma for every label: a negative's factor should be p^gamma."""
    loss = (1 - torch.sigmoid(inputs)) ** gamma * L.binary_cross_entropy_with_logits(
        inputs, targets, reduction="none")
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return L._reduce(loss, reduction)


def focal_with_alpha_on_the_wrong_class(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """alpha weighs the negatives and 1 - alpha the positives."""
    if alpha < 0:
        return L.sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction)
    swapped = L.sigmoid_focal_loss(inputs, targets, -1, gamma, "none")
    return L._reduce((alpha * (1 - targets) + (1 - alpha) * targets) * swapped, reduction)


def focal_mean_over_samples(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """'mean' dividing by the number of samples (rows) instead of the number of elements."""
    loss = L.sigmoid_focal_loss(inputs, targets, alpha, gamma, "sum" if reduction == "mean"
                                else reduction)
    return loss / inputs.shape[0] if reduction == "mean" else loss


@pytest.mark.parametrize("mutant", [focal_with_p_instead_of_p_t,
                                    focal_with_alpha_on_the_wrong_class,
                                    focal_mean_over_samples, naive_focal_loss])
def test_focal_loss_mutants_are_caught_by_the_registered_checks(mutant):
    def cpu_rows(checks):
        return [r for r in run_checks(checks, devices=["cpu"]).rows if r.device == "cpu"]

    assert all(r.passed for r in cpu_rows(L.focal_loss_checks()))
    failed = [r.check for r in cpu_rows(L.focal_loss_checks(mutant)) if r.failed]
    assert failed, f"{mutant.__name__} passed every check"


def test_focal_loss_mutants_are_caught_by_the_tests():
    x, y = focal_case(3, torch.float64, 4.0, False)
    f64 = torch.float64
    assert not fails(lambda: compare(L.sigmoid_focal_loss, TORCHVISION_FOCAL, [x, y], f64))
    assert fails(lambda: compare(focal_with_p_instead_of_p_t, TORCHVISION_FOCAL, [x, y], f64))
    assert fails(lambda: compare(focal_with_alpha_on_the_wrong_class, TORCHVISION_FOCAL, [x, y],
                                 f64))
    assert fails(lambda: compare(focal_mean_over_samples, TORCHVISION_FOCAL, [x, y], f64,
                                 reduction="mean"))
    saturating = torch.cat([SATURATING, SATURATING]), torch.cat([torch.zeros(4), torch.ones(4)])
    assert fails(lambda: compare(naive_focal_loss, TORCHVISION_FOCAL, list(saturating),
                                 torch.float32))
