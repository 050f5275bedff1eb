"""The training loop: one Accelerate loop for a CPU, one GPU or many processes.

It knows nothing about tasks or strategies: it gets a model, optimizer parameter groups, a task
(for batching, loss and metrics) and the tokenized datasets, and returns the best model.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, TorchDynamoPlugin, set_seed
from safetensors.torch import load_model
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from nlp_transfer.config import TrainingConfig
from nlp_transfer.errors import UserError
from nlp_transfer.evaluation.metrics import scalar_metrics
from nlp_transfer.training.checkpoints import (
    checkpoint_dir,
    latest_checkpoint,
    link_or_copy,
    read_state,
    save_checkpoint,
    write_atomically,
    write_collectively,
)
from nlp_transfer.training.sampler import LengthGroupedBatchSampler

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")
BEST_DIR = "best"
BEST_FILE = "best_model.safetensors"


class TrainableTask(Protocol):
    """What the loop needs from a task."""

    default_metric: str

    def collator(self) -> Any: ...
    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...
    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: Any = None) -> dict[str, Any]: ...


@dataclass
class FitResult:
    """What training produced: the best model (loaded), its validation metrics and the history."""

    model: torch.nn.Module
    best_metric: float | None
    best_step: int
    metric_name: str
    history: list[dict[str, Any]] = field(default_factory=list)
    train_samples_per_second: float = 0.0
    train_seconds: float = 0.0
    global_step: int = 0
    stopped_early: bool = False
    prepared_model: torch.nn.Module | None = None  # the model as Accelerate wrapped it (DDP, FSDP, DeepSpeed)


def make_accelerator(config: TrainingConfig, output_dir: Path | None = None, log: bool = True) -> Accelerator:
    """An Accelerator for this run: precision, accumulation and TensorBoard logging under RUN_DIR/logs."""
    kwargs: dict[str, Any] = {}
    if log and output_dir is not None:
        kwargs.update(log_with="tensorboard", project_dir=str(output_dir))
    # without a GPU, Accelerate needs cpu=True to join processes started by torchrun
    # (`accelerate launch --multi_gpu --num_processes N`) as MULTI_CPU workers over gloo
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # one process: let a later run in the same process (compare, notebooks) choose another precision
        AcceleratorState._reset_state()
    if config.torch_compile:
        kwargs["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor", dynamic=True)
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        **kwargs,
    )


def make_optimizer(param_groups: list[dict[str, Any]], learning_rate: float) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel where torch supports it (about 10x faster steps on CPU than the foreach version)."""
    try:
        return torch.optim.AdamW(param_groups, lr=learning_rate, fused=True)
    except (RuntimeError, ValueError):  # e.g. parameters on a device or in a dtype without a fused kernel
        return torch.optim.AdamW(param_groups, lr=learning_rate)


def make_dataloader(
    dataset: datasets.Dataset,
    collator: Any,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    group_by_length: bool,
    columns: Sequence[str] = MODEL_COLUMNS,
) -> tuple[DataLoader, LengthGroupedBatchSampler]:
    """A DataLoader over ``dataset`` (tokenized, with a ``length`` column) batched by length.

    Only ``columns`` (model inputs and labels) reach the collator.
    """
    sampler = LengthGroupedBatchSampler(
        list(dataset["length"]), batch_size, shuffle=shuffle, seed=seed, group_by_length=group_by_length
    )
    rows = dataset.select_columns([c for c in dataset.column_names if c in columns]).to_list()
    return DataLoader(rows, batch_sampler=sampler, collate_fn=collator), sampler


def fit(
    *,
    model: torch.nn.Module,
    task: TrainableTask,
    param_groups: list[dict[str, Any]],
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset,
    config: TrainingConfig,
    output_dir: str | Path,
    seed: int = 42,
    resume: bool = False,
    accelerator: Accelerator | None = None,
    hparams: dict[str, Any] | None = None,
    epoch_callback: Any = None,
    step_callback: Any = None,
) -> FitResult:
    """Train ``model`` with AdamW, linear warmup/decay, clipping and accumulation; keep the best model.

    Evaluates on ``eval_dataset`` every epoch (or every ``eval_steps``), checkpoints at each
    evaluation (and every ``save_steps``), stops early on ``metric_for_best_model`` if asked, and
    with ``resume=True`` continues exactly from the newest checkpoint in ``output_dir``.
    ``epoch_callback(model, optimizer, epoch)`` runs before each epoch (e.g. gradual unfreezing), and
    ``step_callback(model, optimizer, global_step)`` before the first batch of the run and after every
    optimizer step (gradual unfreezing in phases of N steps). Both derive their effect from their
    arguments alone, so a resumed run is set up as the uninterrupted one was.
    """
    output_dir = Path(output_dir)
    accelerator = accelerator or make_accelerator(config, output_dir)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    set_seed(seed)
    metric_name = task.default_metric if config.metric_for_best_model == "auto" else config.metric_for_best_model
    greater_is_better = not metric_name.endswith(("loss", "hamming_loss"))

    columns = getattr(task, "batch_columns", MODEL_COLUMNS)
    train_dl, train_sampler = make_dataloader(
        train_dataset,
        task.collator(),
        config.batch_size,
        shuffle=True,
        seed=seed,
        group_by_length=config.group_by_length,
        columns=columns,
    )
    eval_dl, eval_sampler = make_dataloader(
        eval_dataset, task.collator(), config.eval_batch_size, shuffle=False, seed=seed, group_by_length=True, columns=columns
    )
    eval_order = loader_order(eval_sampler)
    steps_per_epoch = math.ceil(len(train_dl) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(param_groups, config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_dl, eval_dl, scheduler = accelerator.prepare(model, optimizer, train_dl, eval_dl, scheduler)
    # the schedule above counts unsharded batches (Accelerate steps it once per process); each process
    # takes its share of the batches, so it runs this many optimizer steps
    run_steps = math.ceil(len(train_dl) / config.gradient_accumulation_steps) * config.epochs

    state: dict[str, Any] = {
        "epoch": 0,
        "batches_done": 0,
        "global_step": 0,
        "best_metric": None,
        "best_step": 0,
        "evals_without_improvement": 0,
        "history": [],
        "train_seconds": 0.0,
        "train_samples": 0,
    }
    best_dir = checkpoint_dir(output_dir) / BEST_DIR
    best_files = {BEST_FILE: best_dir / "model.safetensors"}
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            raise UserError(
                f"{output_dir}: --resume found no complete checkpoint in {checkpoint_dir(output_dir)}. Start without --resume."
            )
        accelerator.load_state(str(checkpoint))
        state = read_state(checkpoint)
        best_copy = checkpoint / BEST_FILE
        if accelerator.is_main_process and best_copy.is_file():  # the best model as of this checkpoint
            write_atomically(best_dir, lambda tmp: link_or_copy(best_copy, tmp / "model.safetensors"))
        accelerator.print(f"Resuming from {checkpoint} (epoch {state['epoch'] + 1}, step {state['global_step']}).")

    if hparams and accelerator.log_with:
        accelerator.init_trackers("logs", config=_flat_hparams(hparams))

    progress = tqdm(
        total=run_steps,
        initial=state["global_step"],
        disable=not accelerator.is_local_main_process,
        desc="training",
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 15,
    )
    stop = False
    running_loss = torch.zeros((), device=accelerator.device)
    running_count = 0
    window_start, window_samples = time.perf_counter(), 0

    def evaluate_and_checkpoint() -> None:
        nonlocal stop
        metrics = evaluate_model(model, eval_dl, task, accelerator, dataset=eval_dataset, order=eval_order)
        epoch_position = state["epoch"] + state["batches_done"] / max(len(train_dl), 1)
        record = {"epoch": round(epoch_position, 4), "step": state["global_step"], **scalar_metrics(metrics)}
        state["history"].append(record)
        value = metrics.get(metric_name)
        if value is None:
            raise UserError(
                f"training.metric_for_best_model={metric_name!r} is not a validation metric; "
                f"choose one of {sorted(scalar_metrics(metrics))}."
            )
        improved = state["best_metric"] is None or (
            value > state["best_metric"] if greater_is_better else value < state["best_metric"]
        )
        if improved:
            state.update(best_metric=value, best_step=state["global_step"], evals_without_improvement=0)
            # every process takes part: FSDP and DeepSpeed ZeRO-3 gather their shards into one state dict here
            write_collectively(
                accelerator, best_dir, lambda tmp: accelerator.save_model(model, str(tmp), safe_serialization=True)
            )
        else:
            state["evals_without_improvement"] += 1
        accelerator.log({f"eval/{k}": v for k, v in scalar_metrics(metrics).items()}, step=state["global_step"])
        accelerator.print(
            f"[eval] epoch {record['epoch']} step {record['step']}: "
            + ", ".join(f"{k}={v:.4f}" for k, v in scalar_metrics(metrics).items() if k in _SHOWN)
            + ("  (best)" if improved else "")
        )
        patience = config.early_stopping_patience
        if patience is not None and state["evals_without_improvement"] >= patience:
            accelerator.print(f"Early stopping: {metric_name} did not improve for {patience} evaluation(s).")
            stop = True
        save_checkpoint(accelerator, output_dir, state["global_step"], state, config.save_total_limit, extra_files=best_files)

    model.train()
    start_epoch = state["epoch"]
    for epoch in range(start_epoch, config.epochs):
        state["epoch"] = epoch
        if epoch_callback is not None:
            epoch_callback(accelerator.unwrap_model(model), optimizer, epoch)
        if step_callback is not None and epoch == start_epoch:
            step_callback(accelerator.unwrap_model(model), optimizer, state["global_step"])
        loader = train_dl
        if epoch == start_epoch and state["batches_done"]:
            loader = accelerator.skip_first_batches(train_dl, state["batches_done"])
        # Accelerate's loader re-seeds its batch sampler with its own iteration count on every pass:
        # tell it the epoch, so a resumed run draws the same order as an uninterrupted one
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        train_sampler.set_epoch(epoch)
        epoch_start = window_start = time.perf_counter()
        window_samples = 0
        for batch in loader:
            labels = batch.pop("labels")
            with accelerator.accumulate(model):
                logits = model(**batch).logits
                loss = task.loss(logits, labels)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state["batches_done"] += 1
            samples = labels.shape[0] * accelerator.num_processes
            state["train_samples"] += samples
            window_samples += samples
            running_loss += loss.detach()
            running_count += 1
            if not accelerator.sync_gradients:
                continue
            state["global_step"] += 1
            progress.update(1)
            if step_callback is not None:
                step_callback(accelerator.unwrap_model(model), optimizer, state["global_step"])
            if state["global_step"] % config.logging_steps == 0 or state["global_step"] == run_steps:
                mean_loss = accelerator.reduce(running_loss, reduction="mean").item() / running_count
                if not math.isfinite(mean_loss):
                    last = latest_checkpoint(output_dir)
                    raise UserError(
                        f"training loss became {mean_loss} at step {state['global_step']}. Lower "
                        "training.learning_rate or check the data; the last good checkpoint is "
                        f"{last or 'none (no evaluation ran yet)'}."
                    )
                elapsed = time.perf_counter() - window_start
                rate = window_samples / elapsed if elapsed > 0 else 0.0
                progress.set_postfix(loss=f"{mean_loss:.4f}", samples_per_s=f"{rate:.1f}")
                accelerator.log(
                    {
                        "train/loss": mean_loss,
                        "train/learning_rate": scheduler.get_last_lr()[0],
                        "train/samples_per_second": rate,
                    },
                    step=state["global_step"],
                )
                running_loss.zero_()
                running_count = 0
                window_start, window_samples = time.perf_counter(), 0
            if config.eval_strategy == "steps" and state["global_step"] % config.eval_steps == 0:
                state["train_seconds"] += time.perf_counter() - epoch_start
                evaluate_and_checkpoint()
                model.train()
                epoch_start = window_start = time.perf_counter()
                window_samples = 0
            elif config.save_steps and state["global_step"] % config.save_steps == 0:
                state["train_seconds"] += time.perf_counter() - epoch_start
                save_checkpoint(
                    accelerator, output_dir, state["global_step"], state, config.save_total_limit, extra_files=best_files
                )
                epoch_start = window_start = time.perf_counter()
                window_samples = 0
            if stop:
                break
        state["train_seconds"] += time.perf_counter() - epoch_start
        if stop:
            break
        # the epoch is complete: a checkpoint written from here on resumes at the next epoch
        state["epoch"], state["batches_done"] = epoch + 1, 0
        last_epoch = epoch == config.epochs - 1
        evaluated_now = bool(state["history"]) and state["history"][-1]["step"] == state["global_step"]
        if config.eval_strategy == "epoch" or (last_epoch and not evaluated_now):
            evaluate_and_checkpoint()
            model.train()
        if stop:
            break
    progress.close()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if (best_dir / "model.safetensors").is_file():
        load_best_model(accelerator, unwrapped, best_dir / "model.safetensors")
    for tracker in accelerator.trackers:  # end_training() would also end the process group the caller still needs
        tracker.finish()
    seconds = state["train_seconds"]
    return FitResult(
        model=unwrapped,
        best_metric=state["best_metric"],
        best_step=state["best_step"],
        metric_name=metric_name,
        history=state["history"],
        train_samples_per_second=state["train_samples"] / seconds if seconds else 0.0,
        train_seconds=seconds,
        global_step=state["global_step"],
        stopped_early=stop,
        prepared_model=model,
    )


SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED)


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


_SHOWN = ("accuracy", "f1_macro", "f1_micro", "subset_accuracy", "roc_auc", "precision", "recall", "f1", "loss")


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, dataloader: DataLoader, accelerator: Accelerator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (and labels, when the batches carry them) of every example, gathered once per sample."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in dataloader:
        labels = batch.pop("labels", None)
        logits = model(**batch).logits
        token_level = logits.dim() == 3
        if token_level:
            logits = accelerator.pad_across_processes(logits, dim=1, pad_index=-100)
        all_logits.append(accelerator.gather_for_metrics(logits).float().cpu().numpy())
        if labels is not None:
            if token_level:
                labels = accelerator.pad_across_processes(labels, dim=1, pad_index=-100)
            all_labels.append(accelerator.gather_for_metrics(labels).cpu().numpy())
    return _concat(all_logits), (_concat(all_labels) if all_labels else None)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate batches; token-level arrays of different widths are padded with -100 first."""
    if arrays[0].ndim >= 2 and len({a.shape[1] for a in arrays}) > 1:
        width = max(a.shape[1] for a in arrays)
        arrays = [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2), constant_values=-100) for a in arrays]
    return np.concatenate(arrays, axis=0)


def evaluate_model(
    model: torch.nn.Module,
    dataloader: DataLoader,
    task: TrainableTask,
    accelerator: Accelerator,
    dataset: datasets.Dataset | None = None,
    order: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The task's metrics on every example of ``dataloader``.

    ``order`` is the dataset index of each example in loader order (length-sorted batches); with it
    the logits are put back in dataset order, which tasks that read ``dataset`` rely on.
    """
    logits, labels = predict_logits(model, dataloader, accelerator)
    if labels is None:
        raise UserError("the evaluation data has no labels; evaluation needs a label column.")
    if order is not None:
        logits, labels = restore_order(logits, order), restore_order(labels, order)
    return task.compute_metrics(logits, labels, dataset)


def restore_order(values: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Rows in loader order back to dataset order."""
    restored = np.empty_like(values)
    restored[np.asarray(order)] = values
    return restored


def loader_order(sampler: LengthGroupedBatchSampler) -> list[int]:
    """The dataset index of each example, in the order an unshuffled sampler yields them."""
    return [index for batch in sampler for index in batch]


def _flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_hparams(value, name + "."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def remove_checkpoints(output_dir: Path) -> None:
    """Delete RUN_DIR/checkpoints once the final model is saved."""
    shutil.rmtree(checkpoint_dir(output_dir), ignore_errors=True)
