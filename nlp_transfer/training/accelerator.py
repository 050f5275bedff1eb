"""The Accelerator a run trains under, and a model's whole weights across its processes.

:func:`make_accelerator` sets precision, gradient accumulation, ``torch.compile`` and TensorBoard logging for one
run; :func:`full_state_dict` and :func:`load_best_model` move whole-model weights in and out of FSDP or DeepSpeed
shards (plain runs hold full weights in every process). The loop (:mod:`nlp_transfer.training.loop`) and the
pipeline use them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, TorchDynamoPlugin
from safetensors.torch import load_model

from nlp_transfer.config import TrainingConfig
from nlp_transfer.errors import UserError

SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED)


def make_accelerator(config: TrainingConfig, output_dir: Path | None = None, log: bool = True) -> Accelerator:
    """An Accelerator for this run: precision, accumulation and TensorBoard logging under RUN_DIR/logs."""
    kwargs: dict[str, Any] = {}
    if log and output_dir is not None:
        kwargs.update(log_with="tensorboard", project_dir=str(output_dir))
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # one process: let a later run in the same process (a notebook, a test) choose another precision
        AcceleratorState._reset_state()
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():  # Accelerate would train in float32, silently
        raise UserError(
            "training.mixed_precision=fp16 needs a GPU, and this machine has none (on a CPU the run would train in "
            "float32 while its records said fp16). Use training.mixed_precision=bf16 on a CPU, or no."
        )
    if config.torch_compile:
        kwargs["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor", dynamic=True)
    # without a GPU, Accelerate needs cpu=True to join processes started by torchrun
    # (`accelerate launch --multi_gpu --num_processes N`) as MULTI_CPU workers over gloo
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        **kwargs,
    )


def process_state() -> PartialState:
    """This run's processes as Accelerate sees them, set up as :func:`make_accelerator` sets them up.

    A bare ``PartialState()`` made first in a process started by ``accelerate launch`` on a machine without a GPU
    joins the processes in another way than the run's ``Accelerator(cpu=True)`` then expects: every process
    believes it is the main one, and collective writes race.
    """
    return PartialState(cpu=not torch.cuda.is_available())


def full_state_dict(accelerator: Accelerator, prepared_model: torch.nn.Module | None) -> dict[str, torch.Tensor] | None:
    """The whole model's weights gathered from FSDP or DeepSpeed shards (call it on every process); None otherwise.

    Other runs hold full weights in every process, and ``save_pretrained`` reads them directly.
    """
    if prepared_model is None or accelerator.distributed_type not in SHARDED:
        return None
    return accelerator.get_state_dict(prepared_model)


def load_best_model(accelerator: Accelerator, model: torch.nn.Module, path: Path) -> None:
    """Load the best snapshot (a full state dict) back into the trained ``model``.

    A model sharded by FSDP2 gets it through torch's distributed state-dict API (the main process
    reads the file and broadcasts); every other model loads the file directly.
    """
    if getattr(accelerator, "is_fsdp2", False):
        from safetensors.torch import load_file
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        full = load_file(str(path)) if accelerator.is_main_process else {}
        set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        return
    device = accelerator.device
    load_model(model, str(path), device="cpu" if device.type == "cpu" else str(device))


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys, each value a number, string or bool (what TensorBoard records)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, name + "."))
        elif isinstance(value, (int, float, bool)):
            flat[name] = value
        else:  # a path Python read as undecodable bytes holds surrogates, which TensorBoard's protobuf cannot encode
            flat[name] = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return flat
