"""The learning-rate schedule of a run: linear warm-up, then linear decay to zero.

The same multipliers as ``transformers.get_linear_schedule_with_warmup`` (a test compares them step by step),
built on torch's :class:`~torch.optim.lr_scheduler.LambdaLR` directly: importing the transformers helper loads
``transformers.trainer_utils``, which imports peft (about 0.5 s of every training process, LoRA or not).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def linear_warmup_then_decay(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Multiply each group's learning rate by ``step / warmup_steps`` during warm-up, then decay it linearly to 0.

    The decay reaches 0 at ``total_steps`` and stays there. Its state (the step count) saves and resumes with the
    scheduler's ``state_dict``, as the transformers schedule's does.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, factor)
