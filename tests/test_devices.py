import random

import numpy as np
import pytest
import torch

from helpers import devices


def test_cpu_is_always_first():
    found = devices.available_devices()
    assert found[0] == torch.device("cpu")
    assert [d.type for d in found] == [t for t in devices.DEVICE_TYPES if devices.is_available(t)]


def test_cuda_and_mps_follow_torch():
    types = {d.type for d in devices.available_devices()}
    assert ("cuda" in types) == torch.cuda.is_available()
    assert ("mps" in types) == torch.backends.mps.is_available()


def test_unknown_device_type_is_named():
    with pytest.raises(ValueError, match="expected a device type in .* but got 'tpu'"):
        devices.is_available("tpu")


def test_mps_has_no_float64():
    assert not devices.supports_dtype("mps", torch.float64)
    assert devices.supports_dtype("mps", torch.float32)
    assert devices.supports_dtype("cpu", torch.float64)


def draw():
    # the legacy global NumPy generator is the one learners' code uses, so it must be seeded
    return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002


def test_seed_everything_repeats_every_generator():
    assert devices.seed_everything(7) == 7
    first = draw()
    devices.seed_everything(7)
    assert draw() == first
    devices.seed_everything(8)
    assert all(a != b for a, b in zip(draw(), first))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_seed_must_be_a_natural_number(seed):
    with pytest.raises(ValueError, match="non-negative integer seed"):
        devices.seed_everything(seed)


def test_environment_report_names_versions_and_devices():
    report = devices.environment_report()
    assert report["torch"] == torch.__version__
    assert report["numpy"] == np.__version__
    assert report["cuda"] == "not available" or torch.cuda.is_available()
    assert set(devices.DEVICE_TYPES[1:]) <= set(report)
