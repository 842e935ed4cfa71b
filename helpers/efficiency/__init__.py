"""Efficient optimization (chapter 11): every public name of the submodules, importable from
`helpers.efficiency`.

* `steps`: the memory traffic of an optimizer step, the roofline, timing, and Adam as one
  compiled expression per tensor (mirrors `torch.optim.Adam`);
* `scaler`: mixed precision and a loss scaler (mirrors `torch.amp.GradScaler`);
* `memory`: gradient accumulation, the memory of training, activation checkpointing, ZeRO;
* `parallel`: data-parallel training from scratch (mirrors `DistributedDataParallel`).
"""

from helpers.efficiency.memory import *  # noqa: F403
from helpers.efficiency.memory import __all__ as _memory
from helpers.efficiency.parallel import *  # noqa: F403
from helpers.efficiency.parallel import __all__ as _parallel
from helpers.efficiency.scaler import *  # noqa: F403
from helpers.efficiency.scaler import __all__ as _scaler
from helpers.efficiency.steps import *  # noqa: F403
from helpers.efficiency.steps import __all__ as _steps

__all__ = [*_steps, *_scaler, *_memory, *_parallel]
