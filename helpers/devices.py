"""Which devices this machine has, and one call that makes a notebook deterministic."""

from __future__ import annotations

import platform
import random
from importlib import metadata

import numpy as np
import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")
"""Every device type the course knows, in the order tables list them."""

DEVICE_LABELS = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}


def is_available(device_type: str) -> bool:
    """True when this machine can run tensors on `device_type` ("cpu", "cuda" or "mps")."""
    if device_type == "cpu":
        return True
    if device_type == "cuda":
        return torch.cuda.is_available()
    if device_type == "mps":
        return torch.backends.mps.is_available()
    raise ValueError(f"expected a device type in {DEVICE_TYPES}, but got {device_type!r}")


def available_devices() -> list[torch.device]:
    """The devices to verify on: the CPU always, then CUDA and MPS when present."""
    return [torch.device(t) for t in DEVICE_TYPES if is_available(t)]


def supports_dtype(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether `device` can hold tensors of `dtype` at all (Apple's MPS has no float64)."""
    return not (torch.device(device).type == "mps" and dtype == torch.float64)


def seed_everything(seed: int = 0) -> int:
    """Seed Python's `random`, NumPy and torch (every device) so that a notebook is repeatable.

    Returns the seed, so a notebook can print what it used.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"expected a non-negative integer seed, but got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global generator is the one learners' code uses
    torch.manual_seed(seed)  # also seeds every CUDA / MPS generator
    return seed


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> dict[str, str]:
    """Versions of what the course runs on, and the devices found (with their names)."""
    report = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for package in ("torch", "numpy", "scikit-learn", "matplotlib", "ipywidgets", "jupyterlab"):
        report[package] = _version(package)
    report["cpu threads used by torch"] = str(torch.get_num_threads())
    for device_type in DEVICE_TYPES[1:]:
        if not is_available(device_type):
            report[device_type] = "not available"
        elif device_type == "cuda":
            names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
            report["cuda"] = f"{torch.cuda.device_count()} x {', '.join(sorted(names))}"
        else:
            report[device_type] = "available"
    return report
