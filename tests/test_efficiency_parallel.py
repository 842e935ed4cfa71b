"""Data-parallel training (chapter 11) against torch's DistributedDataParallel, for real: two
gloo processes on this machine. `average_gradients` equals DDP after every step, bit for bit;
both equal one process on the global batch; mutants of the averaging and the misconceptions
show their symptoms; the launcher returns results, carries a rank's error and never hangs.

One launch, shared by the module's fixture, trains every variant; the others are tiny."""

import functools
import os
import re
import socket
import sys
import time

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing import ProcessRaisedException

from helpers import verify as V
from helpers.efficiency import parallel as P

DTYPES = ("float64", "float32")
OPTIMIZERS = ("SGD", "Adam")


# --------------------------------------------------------------------------------------------
# Functions the new processes run: they import them from this module by name
# --------------------------------------------------------------------------------------------


def sum_without_dividing(parameters):
    """Mutant: all-reduce, forget the division by W."""
    for param in parameters:
        dist.all_reduce(param.grad)


def divide_twice(parameters):
    """Mutant: average, then divide by W once more."""
    parameters = list(parameters)
    P.average_gradients(parameters)
    for param in parameters:
        param.grad.div_(dist.get_world_size())


def rank_world_and_sum(rank):
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    return rank, dist.get_world_size(), total.item()


def environment(rank, tag):
    return (tag, os.environ.get("GLOO_SOCKET_IFNAME"), torch.get_num_threads(),
            dist.get_backend())


def average_by_hand(rank):
    """average_gradients on a parameter with gradient rank + 1, one without grad, one without a
    gradient."""
    param = torch.zeros(3, requires_grad=True)
    param.grad = torch.full((3,), rank + 1.0)
    frozen = torch.zeros(2)
    P.average_gradients([param, frozen])
    try:
        P.average_gradients([torch.zeros(1, requires_grad=True)])
    except ValueError as error:
        message = str(error)
    return param.grad.tolist(), message


def fail_on_rank_1(rank):
    if rank == 1:
        raise ValueError("rank 1 could not find its shard")
    dist.barrier()  # rank 0 waits for a peer that never comes


def sleep_for_a_minute(rank):
    time.sleep(60)


# --------------------------------------------------------------------------------------------
# The shared launch
# --------------------------------------------------------------------------------------------

MUTANTS = {"mutant: sum without dividing": P.Variant(after_backward=sum_without_dividing),
           "mutant: divided twice": P.Variant(after_backward=divide_twice)}


@pytest.fixture(scope="module")
def runs():
    return P.data_parallel_runs({**P.data_parallel_variants(2), **MUTANTS})


def test_the_launch_trains_every_variant_on_every_rank(runs):
    steps, parameters = 8, 4 * 8 + 8 + 8 * 3 + 3
    assert (runs["world_size"], runs["steps"], runs["global_batch_size"]) == (2, steps, 16)
    for optimizer in OPTIMIZERS:
        for dtype in DTYPES:
            params = runs["params"][optimizer][dtype]
            assert set(params) == {P.SINGLE_PROCESS, *P.data_parallel_variants(2), *MUTANTS}
            for trajectory in params.values():
                assert trajectory.shape == (2, steps + 1, parameters)
                assert trajectory.dtype == getattr(torch, dtype)
            # training moved the parameters and lowered the loss
            assert (params["DDP"][:, -1] - params["DDP"][:, 0]).abs().max() > 0.05
            loss = runs["loss"][optimizer][dtype]["DDP"][0]
            assert loss[-1] < loss[0] - 0.05


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_scratch_equals_ddp_after_every_step_bit_for_bit(runs, optimizer, dtype):
    params = runs["params"][optimizer][dtype]
    assert torch.equal(params["from scratch"], params["DDP"])
    assert P.differences_per_step(runs, "from scratch", "DDP", optimizer=optimizer,
                                  dtype=dtype).max() == 0


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_replicas_start_as_rank_0_and_stay_one_model(runs, optimizer, dtype):
    initial = runs["initial"][dtype]
    assert (initial[1] - initial[0]).abs().max() > 0.1  # each rank drew its own model
    for name in ("from scratch", "DDP"):
        assert P.replica_spread(runs, name, optimizer=optimizer, dtype=dtype).max() == 0
        start = runs["params"][optimizer][dtype][name][:, 0]
        assert torch.equal(start[0], initial[0]) and torch.equal(start[1], initial[0])
    # without the all-reduce the replicas drift apart from the first step on
    spread = P.replica_spread(runs, "no gradient sync", optimizer=optimizer, dtype=dtype)
    assert spread[0] == 0 and (spread[1:] > 1e-3).all()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_data_parallel_equals_one_process_on_the_global_batch(runs, optimizer):
    single = runs["params"][optimizer]
    for name in ("from scratch", "DDP"):
        torch.testing.assert_close(single["float64"][name], single["float64"][P.SINGLE_PROCESS],
                                   rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(single["float32"][name], single["float32"][P.SINGLE_PROCESS])
        assert P.differences_per_step(runs, name, P.SINGLE_PROCESS, optimizer=optimizer,
                                      dtype="float32").max() < 1e-6


@pytest.mark.parametrize("mutant", MUTANTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mutants_of_the_averaging_are_caught(runs, mutant, dtype):
    # with SGD the update is W times too large or too small: far from DDP after the first step
    differences = P.differences_per_step(runs, mutant, "DDP", optimizer="SGD", dtype=dtype)
    assert differences[0] == 0 and (differences[1:] > 1e-3).all()
    expected = 2.0 if "sum" in mutant else 0.5
    assert P.first_update_ratio(runs, mutant, optimizer="SGD", dtype=dtype) == pytest.approx(
        expected, rel=1e-6)
    # and the registered check, fed the mutant as "from scratch", fails
    assert not _checks_on(runs, swap={"from scratch": mutant}).ok


def _checks_on(runs, swap=None):
    """Run DATA_PARALLEL_CHECKS on `runs` (instead of a launch of their own)."""
    swapped = {opt: {dtype: {**by_name, **{k: by_name[v] for k, v in (swap or {}).items()}}
                     for dtype, by_name in by_dtype.items()}
               for opt, by_dtype in runs["params"].items()}
    original = P._default_runs
    P._default_runs = lambda: {**runs, "params": swapped}
    try:
        return V.run_checks(P.DATA_PARALLEL_CHECKS, devices=["cpu"])
    finally:
        P._default_runs = original


def test_the_registered_checks_pass_on_the_runs(runs):
    table = _checks_on(runs)
    assert table.ok and len(table) == len(P.DATA_PARALLEL_CHECKS) * 2  # two dtypes, CPU only
    exact = [row for row in table.rows if "vs DDP" in row.check]
    assert len(exact) == 4 and all(row.max_abs_err == 0 for row in exact)
    assert all(check.name in V._REGISTRY for check in P.DATA_PARALLEL_CHECKS)


@pytest.mark.parametrize("dtype", DTYPES)
def test_misconceptions_show_their_symptoms(runs, dtype):
    # the tutorial's average_gradients on top of DDP: already equal gradients, summed and
    # divided by W -- the same numbers (bit for bit with W = 2), for twice the communication
    assert P.differences_per_step(runs, "DDP + average_gradients", "DDP", dtype=dtype).max() == 0
    # dividing once more / multiplying the loss by W: SGD's step is W times too small / large
    assert P.first_update_ratio(runs, "DDP, loss / W", dtype=dtype) == pytest.approx(0.5, 1e-6)
    assert P.first_update_ratio(runs, "DDP, loss x W", dtype=dtype) == pytest.approx(2.0, 1e-6)
    # they are the two mutants of the from-scratch averaging, to the last bit in float64
    if dtype == "float64":
        sgd = runs["params"]["SGD"]["float64"]
        assert torch.equal(sgd["DDP, loss / W"], sgd["mutant: divided twice"])
        assert torch.equal(sgd["DDP, loss x W"], sgd["mutant: sum without dividing"])
    # Adam hides the scale: its first step is lr * sign(g) up to eps
    for name in ("DDP, loss / W", "DDP, loss x W"):
        ratio = P.first_update_ratio(runs, name, optimizer="Adam", dtype=dtype)
        assert ratio == pytest.approx(1.0, abs=1e-5) and ratio != 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_unequal_local_batches_break_the_mean_and_the_fix_restores_it(runs, dtype):
    unequal = runs["unequal"][dtype]
    for gradients in unequal.values():  # every rank holds the same gradient
        assert torch.equal(gradients[0], gradients[1])
    target = unequal["global mean"][0]
    assert (unequal["DDP, local means"][0] - target).abs().max() > 1e-2
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else {}
    torch.testing.assert_close(unequal["DDP, local sums / N x W"][0], target, **tolerance)


# --------------------------------------------------------------------------------------------
# The launcher
# --------------------------------------------------------------------------------------------


def test_launch_returns_every_ranks_result(runs):  # after the fixture: the fork server is warm
    assert P.launch(rank_world_and_sum) == [(0, 2, 3.0), (1, 2, 3.0)]
    assert P.launch(rank_world_and_sum, world_size=1) == [(0, 1, 1.0)]
    interface = P.loopback_interface()
    assert P.launch(functools.partial(environment, tag="x")) == [("x", interface, 1, "gloo")] * 2


def test_average_gradients_in_processes(runs):
    (grad0, message), (grad1, _) = P.launch(average_by_hand)
    assert grad0 == grad1 == [1.5, 1.5, 1.5]  # (1 + 2) / 2
    assert message == ("expected a gradient for every parameter that requires grad (call "
                       "backward() first), but got None for parameter 0 of shape (1,)")


def test_a_failing_rank_reaches_the_caller_with_its_traceback(runs):
    start = time.monotonic()
    with pytest.raises(ProcessRaisedException) as raised:
        P.launch(fail_on_rank_1, timeout=60)
    message = str(raised.value)
    assert "Process 1 terminated" in message and "Traceback" in message
    assert "in fail_on_rank_1" in message
    assert "ValueError: rank 1 could not find its shard" in message
    assert time.monotonic() - start < 30  # rank 0, stuck in its barrier, was stopped


def test_a_hanging_launch_times_out():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within timeout=1 s, but ranks \[0, 1\]"):
        P.launch(sleep_for_a_minute, timeout=1)
    assert time.monotonic() - start < 30


def test_the_loopback_interface_is_found():
    name = P.loopback_interface()
    if sys.platform.startswith("linux"):
        assert name == "lo"
    if name is not None:
        assert name in {n for _, n in socket.if_nameindex()}


# --------------------------------------------------------------------------------------------
# Batch size, learning rate and bad input
# --------------------------------------------------------------------------------------------


def test_effective_batch_size_and_the_linear_scaling_rule(runs):
    assert P.effective_batch_size(32) == 32
    assert P.effective_batch_size(32, 8, 4) == 1024
    # the launch: 8 samples on each of 2 ranks is one process's global batch of 16
    assert P.effective_batch_size(runs["global_batch_size"] // 2, 2) == 16
    assert P.linear_scaled_lr(0.1, 8192, 256) == pytest.approx(3.2)  # Goyal et al.: 0.1 x 32
    assert P.linear_scaled_lr(0.1, 128, 256) == pytest.approx(0.05)


def not_top_level():
    def inner(rank):
        return rank
    return inner


@pytest.mark.parametrize("call, error, message", [
    (lambda: P.launch(lambda rank: rank), TypeError, "top level of an importable module"),
    (lambda: P.launch(not_top_level()), TypeError, "but got 'not_top_level.<locals>.inner'"),
    (lambda: P.launch(rank_world_and_sum, world_size=0), ValueError,
     "expected world_size >= 1, but got 0"),
    (lambda: P.launch(rank_world_and_sum, world_size=2.0), TypeError,
     "expected world_size to be an int"),
    (lambda: P.launch(rank_world_and_sum, world_size=True), TypeError,
     "expected world_size to be an int"),
    (lambda: P.launch(rank_world_and_sum, [1]), TypeError, "expected args to be a tuple"),
    (lambda: P.launch(rank_world_and_sum, timeout=0), ValueError, "timeout > 0, but got 0"),
    (lambda: P.launch(42), TypeError, "expected fn to be a function, but got int"),
    (lambda: P.data_parallel_runs(world_size=0), ValueError, "world_size >= 1"),
    (lambda: P.data_parallel_runs(global_batch_size=15), ValueError,
     "divisible by world_size=2"),
    (lambda: P.data_parallel_runs(steps=0), ValueError, "expected steps >= 1"),
    (lambda: P.data_parallel_runs({"x": "DDP"}), TypeError, "to be a Variant"),
    (lambda: P.data_parallel_runs({P.SINGLE_PROCESS: P.Variant()}), ValueError,
     "other than 'single process'"),
    (lambda: P.data_parallel_runs(optimizers={"SGD": torch.optim.SGD}), TypeError,
     "(an Optimizer class, a dict of options)"),
    (lambda: P.data_parallel_runs(dtypes=("int64",)), ValueError, "expected a floating dtype"),
    (lambda: P.Variant(loss_scale=0), ValueError, "loss_scale > 0"),
    (lambda: P.Variant(ddp="yes"), TypeError, "expected ddp to be a bool"),
    (lambda: P.Variant(after_backward=lambda ps: None), TypeError, "after_backward"),
    (lambda: P.average_gradients([torch.zeros(1)]), RuntimeError,
     "expected an initialized process group"),
    (lambda: P.broadcast_parameters(torch.zeros(1)), TypeError, "expected a torch.nn.Module"),
    (lambda: P.effective_batch_size(0), ValueError, "per_device_batch_size >= 1"),
    (lambda: P.effective_batch_size(8, accumulation_steps=0.5), TypeError, "an int"),
    (lambda: P.linear_scaled_lr(-0.1, 512, 256), ValueError, "base_lr > 0"),
    (lambda: P.linear_scaled_lr(0.1, 512, 0), ValueError, "base_batch_size >= 1"),
    (lambda: P.data_parallel_variants(-1), ValueError, "world_size >= 1"),
])
def test_bad_input_is_refused_with_what_was_expected(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_reading_the_runs_names_what_exists(runs):
    with pytest.raises(ValueError, match="expected a run in"):
        P.differences_per_step(runs, "from scratch", "DPP")
    with pytest.raises(ValueError, match="expected an optimizer in"):
        P.replica_spread(runs, "DDP", optimizer="RMSprop")


def test_the_first_rank_to_fail_is_reported(tmp_path):
    """When rank 1 fails and rank 0 then loses its peer, torch may see rank 0 first."""
    import pickle
    from types import SimpleNamespace

    files = [tmp_path / "rank0.pickle", tmp_path / "rank1.pickle"]
    for path, trace, written in zip(files, ["RuntimeError: Connection closed by peer",
                                            "ValueError: rank 1 could not find its shard"],
                                    [2_000_000_000, 1_000_000_000]):
        path.write_bytes(pickle.dumps(trace))
        os.utime(path, ns=(written, written))
    context = SimpleNamespace(error_files=[str(f) for f in files],
                              processes=[SimpleNamespace(pid=100), SimpleNamespace(pid=101)])
    seen = ProcessRaisedException("rank 0's error", 0, 100)
    first = P._first_failure(context, seen)
    assert (first.error_index, first.error_pid) == (1, 101)
    assert first.msg.endswith("ValueError: rank 1 could not find its shard")
    os.utime(files[0], ns=(0, 0))  # rank 0 failed first after all: torch's choice stands
    assert P._first_failure(context, seen) is seen



def broadcast_a_batchnorm(rank):
    """A BatchNorm whose weight and running mean differ per rank, then broadcast_parameters."""
    module = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        module.weight.fill_(rank + 1.0)
        module.running_mean.fill_(rank + 1.0)
    P.broadcast_parameters(module)
    return module.weight.tolist(), module.running_mean.tolist()


def rank_after_a_pause(rank):
    if rank == 0:
        time.sleep(1.0)  # rank 0 finishes last
    return rank


def threads_seen(rank):
    return torch.get_num_threads()


def test_broadcast_copies_the_buffers_too():
    assert P.launch(broadcast_a_batchnorm) == [([1.0] * 3, [1.0] * 3)] * 2


def test_launch_returns_the_results_in_rank_order_not_in_finishing_order():
    assert P.launch(rank_after_a_pause) == [0, 1]


def test_an_infinite_number_is_refused():
    with pytest.raises(ValueError, match="expected a finite base_lr > 0, but got inf"):
        P.linear_scaled_lr(float("inf"), 512, 256)
    with pytest.raises(ValueError, match="expected a finite timeout > 0, but got inf"):
        P.launch(rank_world_and_sum, timeout=float("inf"))


def test_each_rank_runs_with_one_thread(tmp_path, monkeypatch):
    # _run_rank in this process, with the process group calls replaced: the thread count
    # must be 1 whatever the caller's (and whatever OMP_NUM_THREADS says)
    import pickle

    monkeypatch.setattr(P.dist, "FileStore", lambda *args: None)
    monkeypatch.setattr(P.dist, "init_process_group", lambda *args, **kwargs: None)
    monkeypatch.setattr(P.dist, "destroy_process_group", lambda: None)
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "unchanged")  # _run_rank sets it; restored after
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        P._run_rank(0, threads_seen, (), 1, str(tmp_path), 10.0)
    finally:
        torch.set_num_threads(previous)
    with open(tmp_path / "result0.pickle", "rb") as file:
        assert pickle.load(file) == 1
