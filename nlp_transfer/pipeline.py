"""One training run from a config: data -> task -> strategy plan -> loop -> evaluation -> save -> push.

Recipes and ``nlp-transfer train`` both call :func:`run_training`; it only composes the stages. What
differs between strategies (how the model is prepared, what trains, how training runs, how the result
is saved) is the strategy's business (:mod:`nlp_transfer.transfer`), and what differs between tasks is the
task's (:mod:`nlp_transfer.tasks`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn.metrics  # noqa: F401  every run scores with it: loaded here, with torch, while the CLI pauses the collector
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from nlp_transfer.config import RunConfig, config_to_dict, save_config
from nlp_transfer.config.parse import checked_config
from nlp_transfer.config.schema import DATA_FILE_KEYS
from nlp_transfer.errors import UserError
from nlp_transfer.evaluation.metrics import scalar_metrics
from nlp_transfer.evaluation.plots import save_confusion_matrix
from nlp_transfer.files import write_text_atomic
from nlp_transfer.output_dir import check_replaceable, has_checkpoint, is_finished, replaced_on_success
from nlp_transfer.process_group import end_process_group
from nlp_transfer.run_info import RUN_INFO_FILE, RunInfo, data_provenance, library_versions, training_facts
from nlp_transfer.tasks import Task, build_task_and_data
from nlp_transfer.threads import restores_torch_threads
from nlp_transfer.training.accelerator import full_state_dict, make_accelerator
from nlp_transfer.training.checkpoints import remove_checkpoints
from nlp_transfer.training.evaluation import evaluate_model
from nlp_transfer.training.first_position import first_position_only
from nlp_transfer.training.loop import FitResult, block_learning_rates, check_selection_metric
from nlp_transfer.transfer import Strategy, TrainingRun, build_strategy, count_parameters

__all__ = ["METRICS_FILE", "RUN_INFO_FILE", "RunResult", "Task", "build_task_and_data", "run_training"]

METRICS_FILE = "metrics.json"
HEADLINE_METRICS = (
    "precision", "recall", "f1", "accuracy", "f1_macro", "f1_micro", "subset_accuracy", "precision_macro", "recall_macro", "roc_auc",
)  # fmt: skip


@dataclass
class RunResult:
    """The outcome of a run: where it is, its metrics per split, and training facts."""

    output_dir: Path
    metrics: dict[str, dict[str, Any]]
    info: dict[str, Any]


@restores_torch_threads
def run_training(config: RunConfig, *, resume: bool = False, overwrite: bool = False, from_scratch: bool = False) -> RunResult:
    """Train, evaluate and save one run as ``config`` says; returns its metrics.

    ``from_scratch`` starts from random weights (the no-transfer baseline of ``nlp-transfer compare``). A self-training
    run (``data.unlabeled_file``) trains its rounds as runs of :func:`train_run` in one process group, which ends here.
    """
    config = checked_config(config)  # a RunConfig built in Python gets the checks a config file gets
    try:
        if config.data.unlabeled_file:
            from nlp_transfer.self_training import run_self_training

            return run_self_training(config, train_run, resume=resume, overwrite=overwrite, from_scratch=from_scratch)
        return train_run(config, resume=resume, overwrite=overwrite, from_scratch=from_scratch)
    finally:
        end_process_group()


def train_run(config: RunConfig, *, resume: bool = False, overwrite: bool = False, from_scratch: bool = False) -> RunResult:
    """One training run: data, model, the strategy's training, scores and the run directory; the process group stays."""
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    output_dir = Path(config.output_dir)
    strategy = build_strategy(config)  # checks the strategy's options before anything loads
    if config.hub.push:  # a bad repo id, no token or offline mode: said now, not after the training
        from nlp_transfer.hub.push import check_push_ready

        check_push_ready(config.hub)
    replace = check_output_dir(output_dir, overwrite=overwrite, resume=resume, model=config.model, data_files=data_files(config))
    if resume:
        check_resumed_config(config, output_dir)
    task, data = build_task_and_data(config)
    strategy.check_data(config, data)
    validation = data.splits.get("validation")
    check_selection_metric(
        config.training, task, validation["label"][:] if validation is not None and "label" in validation.column_names else None
    )
    task = strategy.prepare_task(task)

    set_seed(config.seed)
    model = strategy.prepare_model(task.build_model(from_scratch=from_scratch))
    groups = strategy.parameter_groups(
        model, learning_rate=config.training.learning_rate, weight_decay=config.training.weight_decay
    )
    trainable, total = count_parameters(model)
    rates = block_learning_rates(groups)  # before the scheduler moves them
    if config.transfer.head_fit == "logistic":  # solved, not stepped: no optimizer used these rates
        rates = {}
    splits = {name: task.preprocess(split, name) for name, split in data.splits.items()}
    # only now that the data and the model have loaded does an earlier run move aside: bad input keeps it in place
    accelerator = make_accelerator(config.training, output_dir)  # writes nothing yet: the earlier run can move aside
    with replaced_on_success(output_dir, replace, accelerator):
        start_run_dir(config, output_dir, accelerator)
        accelerator.print(describe_run(config, task, data, trainable, total))
        run = TrainingRun(model, task, groups, splits, config, accelerator, output_dir, resume, strategy.callbacks(model))
        with first_position_only(model, skips_unread_positions(config, strategy)) as first_only:
            result = strategy.train(run)  # the best weights are loaded back into `model`
            metrics = score_splits(model, splits, task, accelerator, result, config.training.eval_batch_size)
        info = build_run_info(config, task, data, strategy, model, result, (trainable, total), accelerator, from_scratch)
        info.first_position_only = first_only
        info.learning_rates = rates
        save_outputs(config, strategy, model, result, task, metrics, info, accelerator)
    accelerator.print(format_metrics(metrics, output_dir))
    if config.hub.push and accelerator.is_main_process:
        from nlp_transfer.hub import push_configured_run

        accelerator.print(f"pushed to {push_configured_run(config.hub, output_dir)}")
    accelerator.wait_for_everyone()  # trackers finished in the loop; the caller ends the process group
    return RunResult(output_dir=output_dir, metrics=metrics, info=info.to_dict())


def score_splits(
    model: torch.nn.Module, splits: dict[str, Any], task: Task, accelerator: Accelerator, result: FitResult, batch_size: int
) -> dict[str, Any]:
    """Validation and test metrics of the trained ``model``; validation as the loop scored these weights, not twice."""
    metrics = {}
    if result.best_validation is not None:
        metrics["validation"] = result.best_validation
    for name in ("validation", "test"):
        if name in splits and name not in metrics:
            metrics[name] = evaluate_model(model, splits[name], task, accelerator, batch_size)
    return metrics


def skips_unread_positions(config: RunConfig, strategy: Strategy) -> bool:
    """Whether this run may compute the last layer at the first position alone (``training.skip_unread_positions``)."""
    return (
        config.training.skip_unread_positions
        and config.task != "ner"
        and config.transfer.pooling == "cls"
        and strategy.logits_only
    )


def check_output_dir(
    output_dir: Path, *, overwrite: bool, resume: bool, model: str | None = None, data_files: tuple[str | None, ...] = ()
) -> bool:
    """Refuse a run directory that is a file, missing for ``resume``, full without ``overwrite``, or holding ``model``.

    ``--overwrite`` replaces only an earlier run, and never one that holds the run's ``data_files``.

    Returns True when it holds an earlier run that ``overwrite`` replaces: the caller deletes it once the new
    run's input has loaded, so a run refused for bad input leaves the earlier run as it was.
    """
    check_model_outside(model, output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output_dir={output_dir} is an existing file, not a directory. Set output_dir to a folder path.")
    if resume:
        if not output_dir.is_dir():
            raise UserError(f"{output_dir}: nothing to resume (no such directory). Start without --resume.")
        if is_finished(output_dir) and not has_checkpoint(output_dir):
            raise UserError(
                f"{output_dir}: the run is complete (its reports written, no checkpoint left), so there is nothing to "
                "resume. Use it as it is, or pass --overwrite instead of --resume to train it again."
            )
        return False
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise UserError(
                f"{output_dir}: output directory exists and is not empty. Pass --overwrite to replace it, "
                "--resume to continue its training, or set output_dir=ANOTHER_DIR."
            )
        check_replaceable(output_dir, data_files)
        return True
    return False


def data_files(config: RunConfig) -> tuple[str | None, ...]:
    """The local files a run reads its data from (an ``--overwrite`` of the folder holding one is refused)."""
    return tuple(getattr(config.data, key) for key in DATA_FILE_KEYS)


def check_model_outside(model: str | None, output_dir: Path) -> None:
    """Refuse an ``output_dir`` that is the local ``model`` folder or holds it: the run would delete or mix it."""
    if not model or not Path(model).expanduser().exists():
        return  # a Hub id, or nothing local to lose
    source, target = Path(model).expanduser().resolve(), output_dir.resolve()
    if source == target or target in source.parents:
        raise UserError(
            f"output_dir={output_dir} holds the model this run starts from (model={model}): the run would replace it. "
            "Set output_dir to another folder."
        )


def check_resumed_config(config: RunConfig, output_dir: Path) -> None:
    """Refuse to resume with a setting that changes training; say which harmless settings changed."""
    from nlp_transfer.config import load_config
    from nlp_transfer.training.resume_check import check_resumable
    from nlp_transfer.transfer.base import unread_options_allowed, without_unread_options

    saved_file = output_dir / "config.yaml"
    if not saved_file.is_file():
        return
    with unread_options_allowed():  # a run saved before options of other strategies were refused still resumes
        saved = config_to_dict(without_unread_options(load_config(saved_file)))
    harmless = check_resumable(saved, config_to_dict(config), str(saved_file))
    check_same_data(config, output_dir)
    if harmless:
        print(f"changed on resume (harmless): {', '.join(harmless)}")


#: the data files a run started from (path, size, sha256), written when RUN_DIR is made, checked on --resume
DATA_RECORD = "data_files.json"


def data_file_record(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Path, size and sha256 of each local data file of ``config``, by its ``data.*_file`` key."""
    return data_provenance({key: getattr(config.data, key) for key in DATA_FILE_KEYS})


def check_same_data(config: RunConfig, output_dir: Path) -> None:
    """Refuse to resume on a data file whose contents changed since the run started (same path, other rows); the
    test file, read only once training is over, may change."""
    from nlp_transfer.training.resume_check import HARMLESS_ON_RESUME

    record = output_dir / DATA_RECORD
    if not record.is_file():
        return  # a run from before the record existed
    saved = json.loads(record.read_text(encoding="utf-8"))
    for key, now in data_file_record(config).items():
        before = saved.get(key, {})
        if f"data.{key}" in HARMLESS_ON_RESUME:
            continue
        if "sha256" in now and "sha256" in before and now["sha256"] != before["sha256"]:
            raise UserError(
                f"data.{key}={now['path']} changed since the run started ({before['bytes']:,} bytes then, "
                f"{now['bytes']:,} now): resuming would train on other rows. Restore the file, or start again with --overwrite."
            )


def start_run_dir(config: RunConfig, output_dir: Path, accelerator: Accelerator | None = None) -> Accelerator:
    """The run's Accelerator (``accelerator``, or a new one); the main process creates RUN_DIR and writes config.yaml."""
    accelerator = accelerator or make_accelerator(config.training, output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / "config.yaml")
        record_data_files(config, output_dir)
    accelerator.wait_for_everyone()
    return accelerator


def record_data_files(config: RunConfig, output_dir: Path) -> None:
    """Write the data files' record (:func:`data_file_record`) at a run's first start; a resumed run keeps it, and
    ``--resume`` checks against it (:func:`check_same_data`)."""
    if not (output_dir / DATA_RECORD).is_file():
        write_text_atomic(output_dir / DATA_RECORD, json.dumps(data_file_record(config), indent=2) + "\n")


def describe_run(config: RunConfig, task: Task, data: Any, trainable: int, total: int) -> str:
    """Three lines on what this run trains: model, task and strategy, data."""
    return (
        f"model {task.model_name} ({task.model_source} copy: {task.model_path})\n"
        f"task {config.task}, {len(task.labels)} label{'' if len(task.labels) == 1 else 's'}; strategy {config.strategy}: "
        f"{trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%)\n"
        f"data: " + ", ".join(f"{name} {len(split):,} ({data.sources[name]})" for name, split in data.splits.items())
    )


def build_run_info(
    config: RunConfig,
    task: Task,
    data: Any,
    strategy: Strategy,
    model: torch.nn.Module,
    result: FitResult,
    counts: tuple[int, int],
    accelerator: Accelerator,
    from_scratch: bool,
) -> RunInfo:
    """The typed run report of a finished run (``counts``: trainable and total parameters at the start)."""
    trainable, total = counts
    files = {f"{split}_file": getattr(config.data, f"{split}_file") for split in ("train", "validation", "test")}
    info = RunInfo(
        task=config.task,
        strategy=config.strategy,
        from_scratch=from_scratch,
        base_model=task.model_name,
        base_model_source=task.model_source,
        labels=list(task.labels),
        threshold=task.threshold if task.multi_label else None,
        max_length=task.max_length,
        document_context=getattr(task, "document_context", 0),
        trainable_parameters=trainable,
        total_parameters=total,
        trainable_parameters_last_epoch=count_parameters(model)[0],  # gradual unfreezing: more than at the start
        **training_facts(result),
        examples={name: len(split) for name, split in data.splits.items()},
        truncated_texts=dict(task.truncated),
        repaired_tags=dict(getattr(data, "repaired_tags", {}) or {}),
        augmented_examples=dict(getattr(data, "augmented", {}) or {}),
        pseudo_labeled_examples=int(getattr(data, "pseudo_labeled", 0) or 0),
        label_examples=int(getattr(data, "label_examples", 0) or 0),
        data_files=data_provenance(files),
        versions=library_versions(),
        num_processes=accelerator.num_processes,
        mixed_precision=config.training.mixed_precision,
    )
    fields = {f.name for f in dataclasses.fields(RunInfo)}
    for key, value in strategy.run_info().items():  # a strategy from outside the package may report its own facts
        if key in fields:
            setattr(info, key, value)
        else:
            info.strategy_facts[key] = value
    return info


def save_outputs(
    config: RunConfig,
    strategy: Strategy,
    model: torch.nn.Module,
    result: FitResult,
    task: Task,
    metrics: dict[str, Any],
    info: RunInfo,
    accelerator: Accelerator,
) -> None:
    """Gather the weights (every process), then the main process writes the run directory."""
    state_dict = strategy.state_dict_for_save(model, full_state_dict(accelerator, result.prepared_model))
    if accelerator.is_main_process:
        output_dir = Path(config.output_dir)
        strategy.save(model, output_dir, state_dict)
        save_reports(output_dir, task, metrics, info)
        if not config.training.keep_checkpoints:
            remove_resume_state(output_dir)
    accelerator.wait_for_everyone()


def remove_resume_state(output_dir: Path) -> None:
    """Once the run's files are written: its checkpoints, and the data record that ``--resume`` checked against."""
    remove_checkpoints(output_dir)
    (output_dir / DATA_RECORD).unlink(missing_ok=True)


def save_reports(output_dir: Path, task: Task, metrics: dict[str, Any], info: RunInfo) -> None:
    """The tokenizer, the confusion-matrix plots, metrics.json and, last, run_info.json.

    Both reports are written whole or not at all (:func:`write_text_atomic`), run_info.json last: a run counts as
    finished only once both are whole (:func:`nlp_transfer.output_dir.is_finished`), so one interrupted in between is
    never taken for a finished run that ``--overwrite`` may move over the earlier run waiting in ``.NAME.replaced``.
    """
    task.tokenizer.save_pretrained(output_dir)
    save_metrics(output_dir, metrics)
    info.write(output_dir)


def save_metrics(output_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json and a confusion-matrix plot per split that has one."""
    for split, values in metrics.items():
        if "confusion_matrix" in values:
            save_confusion_matrix(
                values["confusion_matrix"], output_dir / f"confusion_matrix_{split}.png", title=f"Confusion matrix ({split})"
            )
    write_text_atomic(output_dir / METRICS_FILE, json.dumps(metrics, indent=2))


def format_metrics(metrics: dict[str, dict[str, Any]], output_dir: Path) -> str:
    """A short table of the headline metrics per split (a task whose metrics have none of those names: all of them)."""
    lines = [f"\nResults (saved in {output_dir}):"]
    for split, values in metrics.items():
        numbers = scalar_metrics(values)
        names = [k for k in HEADLINE_METRICS if k in numbers] or list(numbers)
        lines.append(f"  {split:<11}" + "  ".join(f"{k}={numbers[k]:.4f}" for k in names))
    return "\n".join(lines)
