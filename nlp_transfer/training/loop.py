"""The training loop: one Accelerate loop for a CPU, one GPU or many processes.

It knows nothing about tasks or strategies: it gets a model, optimizer parameter groups, a task (for
batching, loss and metrics), the tokenized datasets and the strategy's callbacks, and returns the best
model. Read :func:`fit` first: set up, resume, then epochs of steps, each optimizer step followed by
logging and, when due, an evaluation (which checkpoints) or a plain checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm

from nlp_transfer.config import TrainingConfig
from nlp_transfer.config.checks import check_ranges
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.evaluation.metrics import lower_is_better, scalar_metrics
from nlp_transfer.threads import restores_torch_threads
from nlp_transfer.training.accelerator import flat_hparams, load_best_model, make_accelerator
from nlp_transfer.training.batches import MODEL_COLUMNS, LengthSortedBatches, batch_rows, make_dataloader
from nlp_transfer.training.callbacks import TrainingCallback
from nlp_transfer.training.checkpoints import (
    TRAINING_OVER_FILE,
    checkpoint_dir,
    latest_checkpoint,
    link_or_copy,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    write_atomically,
    write_collectively,
)
from nlp_transfer.training.dropout_masks import MaskSource, fast_dropout
from nlp_transfer.training.evaluation import eager_module, evaluate_batches
from nlp_transfer.training.heap import reused_heap_memory
from nlp_transfer.training.schedule import linear_warmup_then_decay

BEST_DIR = "best"
BEST_FILE = "best_model.safetensors"
_SHOWN = ("accuracy", "f1_macro", "f1_micro", "subset_accuracy", "roc_auc", "precision", "recall", "f1", "loss")


class TrainableTask(Protocol):
    """What the loop needs from a task."""

    default_metric: str

    def collator(self) -> Any:
        """The function that pads a list of encoded rows into a batch of tensors."""
        ...

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch's logits against its labels."""
        ...

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: Any = None) -> dict[str, Any]:
        """Validation metrics of a split's logits and labels (``dataset``: the split, for tasks that need its rows)."""
        ...


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
    #: every validation metric of the best evaluation: the loaded model's own, so the caller need not score it again
    best_validation: dict[str, Any] | None = None
    fast_dropout_masks: bool = False  # training.fast_dropout_masks took effect


@dataclass
class LoopState:
    """Where training stands; saved as JSON with every checkpoint, so ``--resume`` continues from it."""

    epoch: int = 0
    batches_done: int = 0  # batches of the current epoch already trained
    global_step: int = 0
    best_metric: float | None = None
    best_step: int = 0
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_validation: dict[str, Any] | None = None  # all metrics of the best evaluation (per class, confusion matrix)
    train_seconds: float = 0.0
    train_samples: int = 0
    stopped_early: bool = False  # a resumed fit trains no more (nor does one past its last epoch)


@dataclass
class Loop:
    """The moving parts of one call of :func:`fit`."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_dl: Any
    train_sampler: Any
    eval_batches: LengthSortedBatches
    eval_dataset: datasets.Dataset
    task: TrainableTask
    config: TrainingConfig
    output_dir: Path
    callbacks: Sequence[TrainingCallback]
    metric_name: str
    run_steps: int
    state: LoopState = field(default_factory=LoopState)
    stop: bool = False
    segment_start: float = 0.0  # when the current stretch of timed training began
    window: LogWindow | None = None
    masks: MaskSource | None = None  # training.fast_dropout_masks: where the dropout masks come from
    fast_masks: bool = False  # whether the model's dropout was routed through ``masks``

    @property
    def best_dir(self) -> Path:
        """Where the best model so far is kept while training."""
        return checkpoint_dir(self.output_dir) / BEST_DIR

    def unwrapped(self) -> torch.nn.Module:
        """The model without Accelerate's wrappers (what callbacks and saving see)."""
        return self.accelerator.unwrap_model(self.model)


@dataclass
class LogWindow:
    """Loss and throughput since the last log record (``training.logging_steps`` optimizer steps)."""

    loss: torch.Tensor
    batches: int = 0
    samples: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, loss: torch.Tensor, samples: int) -> None:
        """Count one batch."""
        self.loss += loss.detach()
        self.batches += 1
        self.samples += samples

    def reset(self) -> None:
        """Start a new window now."""
        self.loss.zero_()
        self.batches, self.samples, self.started = 0, 0, time.perf_counter()


@restores_torch_threads
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
    callbacks: Sequence[TrainingCallback] = (),
) -> FitResult:
    """Train ``model`` with AdamW, linear warmup/decay, clipping and accumulation; keep the best model.

    Evaluates on ``eval_dataset`` every epoch (or every ``eval_steps``), checkpoints at each evaluation
    (and every ``save_steps``), stops early on ``metric_for_best_model`` if asked, and with
    ``resume=True`` continues exactly from the newest checkpoint in ``output_dir``. ``callbacks``
    (:class:`~nlp_transfer.training.callbacks.TrainingCallback`) run at the start, before each epoch
    and after each optimizer step.
    """
    check_ranges(config, "fit(config=TrainingConfig(...))", "training")  # as a config file's: no ZeroDivisionError later
    for name, rows in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
        if len(rows) == 0:  # an empty evaluation set was "no labels"; an empty training set ran no step
            raise UserError(
                f"fit: {name} has no rows; give it the rows to {'train on' if name[0] == 't' else 'select the model on'}."
            )
    if config.torch_threads:  # given back on return (restores_torch_threads)
        torch.set_num_threads(config.torch_threads)
    output_dir = Path(output_dir)
    if not resume and list_checkpoints(output_dir):  # another fit's: pruning would mix them, --resume continue them
        raise UserError(
            f"{output_dir}: holds checkpoints of an earlier fit ({checkpoint_dir(output_dir)}). Pass resume=True to "
            "continue it, or give another output_dir (or delete that folder) to start a new one."
        )
    accelerator = accelerator or make_accelerator(config, output_dir)
    loop = setup_loop(model, task, param_groups, train_dataset, eval_dataset, config, output_dir, seed, accelerator, callbacks)
    if resume:
        resume_loop(loop)
    if hparams and accelerator.log_with:
        # a resumed run hides what the interrupted one logged after its checkpoint (TensorBoard showed those steps twice)
        purge = {"tensorboard": {"purge_step": loop.state.global_step + 1}} if resume else {}
        accelerator.init_trackers("logs", config=flat_hparams(hparams), init_kwargs=purge)
    first_epoch = config.epochs if loop.stop else loop.state.epoch
    if resume and first_epoch >= config.epochs:  # nothing left to train: the callbacks leave the model as the run ended
        replay_callbacks(loop, min(loop.state.epoch, config.epochs - 1))
    # the bar closes (ends its line) however fit ends, so an error or "interrupted" starts a line of its own
    with progress_bar(loop) as progress, reused_heap_memory(config.reuse_heap_memory):
        with fast_dropout(loop.unwrapped(), loop.masks) as loop.fast_masks:
            for epoch in range(first_epoch, config.epochs):
                train_epoch(loop, epoch, progress, first=epoch == first_epoch)
                if loop.stop:
                    break
    return finish(loop)


def setup_loop(
    model: torch.nn.Module,
    task: TrainableTask,
    param_groups: list[dict[str, Any]],
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset,
    config: TrainingConfig,
    output_dir: Path,
    seed: int,
    accelerator: Accelerator,
    callbacks: Sequence[TrainingCallback],
) -> Loop:
    """Data loaders, optimizer and schedule, all prepared by Accelerate.

    Whatever an earlier fit prepared on this accelerator (a strategy's first phase) is released first, so this
    fit's checkpoints hold its own model and optimizer only, not the earlier ones again at every save. (Only then:
    the release runs a full garbage collection, 0.3 s that a single fit need not pay.)
    """
    if getattr(accelerator, "_models", None) or getattr(accelerator, "_optimizers", None):
        accelerator.free_memory()
    masks = dropout_mask_source(config, accelerator, seed)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model, masks)
    set_seed(seed)
    columns = getattr(task, "batch_columns", MODEL_COLUMNS)
    train_dl, train_sampler = make_dataloader(
        train_dataset, task.collator(), config.batch_size, shuffle=True, seed=seed,
        group_by_length=config.group_by_length, columns=columns,
    )  # fmt: skip
    eval_batches = LengthSortedBatches.build(batch_rows(eval_dataset, columns), task.collator(), config.eval_batch_size)
    total_steps = math.ceil(len(train_dl) / config.gradient_accumulation_steps) * config.epochs
    optimizer = make_optimizer(param_groups, config.learning_rate)
    scheduler = linear_warmup_then_decay(optimizer, warmup_steps(config.warmup_ratio, total_steps), total_steps)
    model, optimizer, train_dl, eval_batches.loader, scheduler = accelerator.prepare(
        model, optimizer, train_dl, eval_batches.loader, scheduler
    )
    metric_name = selection_metric(config, task)
    # the schedule counts unsharded batches (Accelerate steps it once per process); each process runs its share
    run_steps = math.ceil(len(train_dl) / config.gradient_accumulation_steps) * config.epochs
    return Loop(
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_dl=train_dl,
        train_sampler=train_sampler,
        eval_batches=eval_batches,
        eval_dataset=eval_dataset,
        task=task,
        config=config,
        output_dir=output_dir,
        callbacks=callbacks,
        metric_name=metric_name,
        run_steps=run_steps,
        window=LogWindow(torch.zeros((), device=accelerator.device)),
        masks=masks,
    )


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """Warm-up steps: ``warmup_ratio`` of the steps rounded up, as the Trainer counts them, but never every step.

    The first warm-up step runs at learning rate 0, so a warm-up as long as the run (a one-step run at any ratio)
    would leave the model untrained.
    """
    return min(math.ceil(warmup_ratio * total_steps), max(total_steps - 1, 0))


def enable_gradient_checkpointing(model: torch.nn.Module, masks: MaskSource | None) -> None:
    """Recompute activations in the backward pass; a recomputed segment replays the fast dropout masks it drew."""
    replay = {"context_fn": masks.checkpoint_contexts} if masks is not None else {}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False, **replay})


def dropout_mask_source(config: TrainingConfig, accelerator: Accelerator, seed: int) -> MaskSource | None:
    """Where ``training.fast_dropout_masks`` draws the masks: CPU runs that are not compiled; None elsewhere."""
    wanted = config.fast_dropout_masks and not config.torch_compile and accelerator.device.type == "cpu"
    return MaskSource(seed, accelerator.process_index) if wanted else None


def resume_loop(loop: Loop) -> None:
    """Load the newest checkpoint's model, optimizer, scheduler, RNG and loop state (and its best model)."""
    checkpoint = latest_checkpoint(loop.output_dir)
    if checkpoint is None:
        raise UserError(
            f"{loop.output_dir}: --resume found no complete checkpoint in {checkpoint_dir(loop.output_dir)}. "
            "Start again: --overwrite in place of --resume."
        )
    loop.state = LoopState(**load_checkpoint(loop.accelerator, checkpoint))
    loop.stop = loop.state.stopped_early
    if (checkpoint / TRAINING_OVER_FILE).is_file() and not loop.stop and not is_training_over(loop.state, loop.config):
        raise UserError(  # it holds no weights: the steps left would train the model passed in, not the fitted one
            f"{checkpoint}: written when its fit had finished ({loop.state.epoch} epoch(s)), so it keeps no weights and "
            f"cannot go on to training.epochs={loop.config.epochs}. Start a new fit from the saved model in another "
            "output_dir (training.keep_checkpoints=true keeps checkpoints that can be extended)."
        )
    best_copy = checkpoint / BEST_FILE
    if loop.accelerator.is_main_process and best_copy.is_file():  # the best model as of this checkpoint
        write_atomically(loop.best_dir, lambda tmp: link_or_copy(best_copy, tmp / "model.safetensors"))
    epoch = min(loop.state.epoch + 1, loop.config.epochs)  # a run checkpointed after its last step is in its last epoch
    loop.accelerator.print(f"Resuming from {checkpoint} (epoch {epoch}, step {loop.state.global_step}).")


def is_training_over(state: LoopState, config: TrainingConfig) -> bool:
    """Whether a loop at ``state`` has no step left to take under ``config`` (every epoch run to its end)."""
    return state.epoch >= config.epochs and state.batches_done == 0


def progress_bar(loop: Loop) -> tqdm:
    """A progress bar over this process's optimizer steps (main process only)."""
    return tqdm(
        total=loop.run_steps,
        initial=loop.state.global_step,
        disable=not loop.accelerator.is_local_main_process,
        desc="training",
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 15,
    )


def replay_callbacks(loop: Loop, epoch: int) -> None:
    """Run the start-of-epoch callbacks of ``epoch`` at the resumed step, so a run resumed after its last step has
    the trainable parameters it ended with (gradual unfreezing's last phase), not those of its first phase."""
    for callback in loop.callbacks:
        callback.on_epoch_start(loop.unwrapped(), loop.optimizer, epoch)
        callback.on_train_start(loop.unwrapped(), loop.optimizer, loop.state.global_step)


def train_epoch(loop: Loop, epoch: int, progress: tqdm, *, first: bool) -> None:
    """One pass over the training batches (the rest of a pass, on resume), then the end-of-epoch evaluation."""
    loop.state.epoch = epoch
    for callback in loop.callbacks:
        callback.on_epoch_start(loop.unwrapped(), loop.optimizer, epoch)
        if first:
            callback.on_train_start(loop.unwrapped(), loop.optimizer, loop.state.global_step)
    loader = loop.train_dl
    if first and loop.state.batches_done:
        loader = loop.accelerator.skip_first_batches(loop.train_dl, loop.state.batches_done)
    # Accelerate's loader re-seeds its batch sampler with its own iteration count on every pass:
    # tell it the epoch, so a resumed run draws the same order as an uninterrupted one
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    loop.train_sampler.set_epoch(epoch)
    loop.model.train()
    resume_clock(loop)
    for batch in loader:
        if train_step(loop, batch):
            progress.update(1)
            after_optimizer_step(loop, progress)
        if loop.stop:
            break
    pause_clock(loop)
    if not loop.stop:
        end_epoch(loop, epoch)


def train_step(loop: Loop, batch: dict[str, torch.Tensor]) -> bool:
    """Forward, backward and (at the end of an accumulation cycle) an optimizer step; True when one was taken."""
    accelerator, config = loop.accelerator, loop.config
    labels = batch.pop("labels")
    if loop.masks is not None:  # this batch's dropout masks, whatever ran before it (exact resume)
        loop.masks.start_batch(loop.state.epoch, loop.state.batches_done)
    with accelerator.accumulate(loop.model):
        loss = loop.task.loss(loop.model(**batch).logits, labels)
        accelerator.backward(loss * short_cycle_scale(loop))
        if accelerator.sync_gradients and config.max_grad_norm:
            clip_gradients(accelerator, loop.model, config.max_grad_norm)
        loop.optimizer.step()
        loop.scheduler.step()
        loop.optimizer.zero_grad(set_to_none=True)
    samples = labels.shape[0] * accelerator.num_processes
    loop.state.batches_done += 1
    loop.state.train_samples += samples
    loop.window.add(loss, samples)
    if not accelerator.sync_gradients:
        return False
    loop.state.global_step += 1
    return True


def short_cycle_scale(loop: Loop) -> float:
    """What the loss of this batch is multiplied by so an epoch's last, short accumulation cycle (fewer batches than
    ``gradient_accumulation_steps`` left) averages over its own batches: Accelerate divides every loss by the full
    count, which cut that cycle's gradient to a fraction and made accumulation differ from a bigger batch."""
    steps = loop.config.gradient_accumulation_steps
    batches = len(loop.train_dl)  # this process's batches an epoch
    remainder = batches % steps
    if steps == 1 or not remainder or loop.state.batches_done < batches - remainder:
        return 1.0
    return steps / remainder


def clip_gradients(accelerator: Accelerator, model: torch.nn.Module, max_norm: float) -> None:
    """Scale the gradients so their total norm is at most ``max_norm``, as Accelerate does, with one pass less on CPUs.

    torch multiplies every gradient by ``min(1, max_norm / (norm + 1e-6))`` even when that is 1, to spare GPUs a
    synchronisation. A CPU has none to spare and a product with exactly 1 changes nothing, so a plain CPU run (one
    process or DDP over CPUs, no loss scaler) scales only when the factor is not 1 (a NaN norm scales, as torch
    does): the same gradients without a pass over all of them. Every other set-up clips through Accelerate.
    """
    plain = accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU)
    if not (plain and accelerator.device.type == "cpu" and accelerator.scaler is None):
        accelerator.clip_grad_norm_(model.parameters(), max_norm)
        return
    with_grads = [param for param in model.parameters() if param.grad is not None]
    total = torch.nn.utils.get_total_norm([param.grad for param in with_grads])
    if not bool(max_norm / (total + 1e-6) >= 1.0):
        torch.nn.utils.clip_grads_with_norm_(with_grads, max_norm, total)


def after_optimizer_step(loop: Loop, progress: tqdm) -> None:
    """Callbacks, then a log record, an evaluation or a checkpoint when one is due."""
    step, config = loop.state.global_step, loop.config
    for callback in loop.callbacks:
        callback.on_step_end(loop.unwrapped(), loop.optimizer, step)
    if step % config.logging_steps == 0 or step == loop.run_steps:
        log_window(loop, progress)
    if config.eval_strategy == "steps" and step % config.eval_steps == 0:
        pause_clock(loop)
        evaluate_and_checkpoint(loop)
        loop.model.train()
        resume_clock(loop)
    elif config.save_steps and step % config.save_steps == 0:
        pause_clock(loop)
        refuse_non_finite_weights(loop)
        write_checkpoint(loop)
        resume_clock(loop)


def log_window(loop: Loop, progress: tqdm) -> None:
    """Mean loss, learning rate and throughput of the window to the progress bar and TensorBoard; stop on NaN."""
    window, accelerator = loop.window, loop.accelerator
    mean_loss = accelerator.reduce(window.loss, reduction="mean").item() / max(window.batches, 1)
    if not math.isfinite(mean_loss):
        last = latest_checkpoint(loop.output_dir)
        raise UserError(
            f"training loss became {mean_loss} at step {loop.state.global_step}. Lower training.learning_rate or check "
            f"the data; the last good checkpoint is {last or 'none (no evaluation ran yet)'}."
        )
    elapsed = time.perf_counter() - window.started
    rate = window.samples / elapsed if elapsed > 0 else 0.0
    progress.set_postfix(loss=f"{mean_loss:.4f}", samples_per_s=f"{rate:.1f}")
    record = {"train/loss": mean_loss, "train/learning_rate": loop.scheduler.get_last_lr()[0], "train/samples_per_second": rate}
    rates = block_learning_rates(loop.optimizer.param_groups, scheduled=True)
    if len(set(rates.values())) > 1:  # layer-wise rates: a curve per block beside train/learning_rate
        record.update({f"train/learning_rate/{block}": rate for block, rate in rates.items()})
    accelerator.log(record, step=loop.state.global_step)
    window.reset()


def block_learning_rates(groups: list[dict[str, Any]], *, scheduled: bool = False) -> dict[str, float]:
    """Each block's learning rate (``{"head": 2e-5, "layer.5": 1.6e-5, ...}``, ``all`` for groups without a block):
    its peak, the rate it was built with, or with ``scheduled`` the scheduler's rate now.

    Groups without parameters are left out; a block's weight-decay and no-decay groups share one rate.
    """
    rates: dict[str, float] = {}
    for group in groups:
        if list(group["params"]):
            rate = group["lr"] if scheduled else group.get("initial_lr", group["lr"])
            rates.setdefault(str(group.get("block", "all")), float(rate))
    return rates


def end_epoch(loop: Loop, epoch: int) -> None:
    """Mark the epoch complete and evaluate (every epoch, or after the last when evaluating by steps)."""
    state = loop.state
    state.epoch, state.batches_done = epoch + 1, 0  # a checkpoint from here on resumes at the next epoch
    last_epoch = epoch == loop.config.epochs - 1
    evaluated_now = bool(state.history) and state.history[-1]["step"] == state.global_step
    if loop.config.eval_strategy == "epoch" or (last_epoch and not evaluated_now):
        evaluate_and_checkpoint(loop)
        loop.model.train()


def beats(metric_name: str, value: float, best: float | None) -> bool:
    """Whether validation ``value`` of ``metric_name`` improves on ``best`` (None: nothing yet); losses go down."""
    if best is None:
        return True
    return value < best if lower_is_better(metric_name) else value > best


def evaluate_and_checkpoint(loop: Loop) -> None:
    """Score validation, keep the model if it is the best so far, decide on early stopping, write a checkpoint."""
    refuse_non_finite_weights(loop)
    state, accelerator = loop.state, loop.accelerator
    metrics = evaluate_batches(eager_module(loop.model), loop.eval_batches, loop.task, accelerator, loop.eval_dataset)
    scalars = scalar_metrics(metrics)
    value = selection_value(metrics, loop.metric_name)
    epoch_position = state.epoch + state.batches_done / max(len(loop.train_dl), 1)
    state.history.append({"epoch": round(epoch_position, 4), "step": state.global_step, **scalars})
    improved = beats(loop.metric_name, value, state.best_metric)
    if improved:
        state.best_metric, state.best_step, state.evals_without_improvement = value, state.global_step, 0
        state.best_validation = metrics
        # every process takes part: FSDP and DeepSpeed ZeRO-3 gather their shards into one state dict here
        write_collectively(
            accelerator, loop.best_dir, lambda tmp: accelerator.save_model(loop.model, str(tmp), safe_serialization=True)
        )
    else:
        state.evals_without_improvement += 1
    accelerator.log({f"eval/{k}": v for k, v in scalars.items()}, step=state.global_step)
    # the usual figures, and always the one that picks the best model (a new task's own names included)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in scalars.items() if k in _SHOWN or k == loop.metric_name)
    accelerator.print(
        f"[eval] epoch {state.history[-1]['epoch']} step {state.global_step}: {shown}" + ("  (best)" if improved else "")
    )
    patience, last = loop.config.early_stopping_patience, state.global_step >= loop.run_steps
    if patience is not None and state.evals_without_improvement >= patience and not last:  # the last stops anyway
        accelerator.print(f"Early stopping: {loop.metric_name} did not improve for {patience} evaluation(s).")
        loop.stop = True
    write_checkpoint(loop)


def selection_metric(config: TrainingConfig, task: Any) -> str:
    """The metric that picks the best model: ``training.metric_for_best_model``, or the task's own for ``auto``."""
    return task.default_metric if config.metric_for_best_model == "auto" else config.metric_for_best_model


def check_selection_metric(config: TrainingConfig, task: Any, validation_labels: Sequence[Any] | None = None) -> None:
    """Refuse, before training, a ``training.metric_for_best_model`` the task's metrics do not hold (tasks that say
    which numbers they report through ``metric_names``; for the others the first evaluation refuses it), and
    ``roc_auc`` on ``validation_labels`` of one class, where it is undefined (the run failed after its first epoch)."""
    names = getattr(task, "metric_names", lambda: None)()
    metric_name = selection_metric(config, task)
    if names is not None and metric_name not in names:
        raise ConfigError(
            f"training.metric_for_best_model={metric_name!r} is not a validation metric of this task; "
            f"choose auto or one of {sorted(names)}."
        )
    if metric_name == "roc_auc" and validation_labels is not None and len({str(v) for v in validation_labels}) < 2:
        raise ConfigError(
            "training.metric_for_best_model=roc_auc is undefined on a validation split of one class; give validation "
            "rows of both classes, or choose accuracy or f1_macro."
        )


def selection_value(metrics: dict[str, Any], metric_name: str) -> float:
    """The number ``training.metric_for_best_model`` names in validation ``metrics``; a UserError listing the numbers
    there when it names none (an unknown name, or a per-class table or matrix, which cannot pick a model)."""
    scalars = scalar_metrics(metrics)
    if metric_name not in scalars:
        raise UserError(
            f"training.metric_for_best_model={metric_name!r} is not a validation metric that is a number; "
            f"choose one of {sorted(scalars)}."
        )
    return scalars[metric_name]


def refuse_non_finite_weights(loop: Loop) -> None:
    """Stop, as a NaN loss does, rather than score or checkpoint weights that hold a NaN or an infinity.

    The loss is checked only every ``logging_steps``, and one step with infinite gradients spoils the weights while
    its own loss was finite: so the weights themselves are checked here, one norm per tensor, agreed by every process.
    """
    trainable = [param.detach() for param in loop.model.parameters() if param.requires_grad]
    local = bool(torch.isfinite(torch.nn.utils.get_total_norm(trainable)).item()) if trainable else True
    flag = torch.tensor([0.0 if local else 1.0], device=loop.accelerator.device)
    if loop.accelerator.reduce(flag, reduction="sum").item() > 0:
        last = latest_checkpoint(loop.output_dir)
        raise UserError(
            f"the weights hold NaN or infinite values at step {loop.state.global_step}, so no checkpoint was written. "
            f"Lower training.learning_rate or set training.max_grad_norm; the last good checkpoint is {last or 'none'}."
        )


def write_checkpoint(loop: Loop) -> None:
    """A checkpoint of everything needed to resume, with the best model so far linked in.

    Once training is over (the last epoch evaluated, or an early stop) a resumed fit only loads the best
    model back: unless the checkpoints are to be kept, that one holds no model, optimizer or scheduler state.
    """
    state, config = loop.state, loop.config
    state.stopped_early = loop.stop
    training_over = loop.stop or is_training_over(state, config)
    best_written = state.best_metric is not None  # known alike on every process, unlike the file's presence
    save_checkpoint(
        loop.accelerator,
        loop.output_dir,
        state.global_step,
        asdict(state),
        config.save_total_limit,
        {BEST_FILE: loop.best_dir / "model.safetensors"},
        training_over=training_over and best_written and not config.keep_checkpoints,
    )


def pause_clock(loop: Loop) -> None:
    """Add the training time since the last resume of the clock (evaluation and checkpoints are not training)."""
    loop.state.train_seconds += time.perf_counter() - loop.segment_start


def resume_clock(loop: Loop) -> None:
    """Restart the training clock and the log window after an evaluation or checkpoint."""
    loop.segment_start = time.perf_counter()
    loop.window.samples, loop.window.started = 0, loop.segment_start


def finish(loop: Loop) -> FitResult:
    """Load the best model back into the trained one and report."""
    loop.accelerator.wait_for_everyone()
    unwrapped = loop.unwrapped()
    best_loaded = (loop.best_dir / "model.safetensors").is_file()
    if best_loaded:
        load_best_model(loop.accelerator, unwrapped, loop.best_dir / "model.safetensors")
    for tracker in loop.accelerator.trackers:  # end_training() would also end the process group the caller still needs
        tracker.finish()
    state = loop.state
    return FitResult(
        model=unwrapped,
        best_metric=state.best_metric,
        best_step=state.best_step,
        metric_name=loop.metric_name,
        history=state.history,
        train_samples_per_second=state.train_samples / state.train_seconds if state.train_seconds else 0.0,
        train_seconds=state.train_seconds,
        global_step=state.global_step,
        stopped_early=loop.stop,
        prepared_model=loop.model,
        best_validation=state.best_validation if best_loaded else None,
        fast_dropout_masks=loop.fast_masks,
    )


# --------------------------------------------------------------------------- building blocks


def make_optimizer(param_groups: list[dict[str, Any]], learning_rate: float) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel where torch supports it (about 10x faster steps on CPU than the foreach version)."""
    try:
        return torch.optim.AdamW(param_groups, lr=learning_rate, fused=True)
    except (RuntimeError, ValueError):  # e.g. parameters on a device or in a dtype without a fused kernel
        return torch.optim.AdamW(param_groups, lr=learning_rate)
