"""One training run from a config: data -> task -> strategy -> training -> evaluation -> run dir.

Recipes and ``nlp-transfer train`` both call :func:`run_training`; it only composes the stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from nlp_transfer.config import RunConfig, TransferConfig, config_to_dict, save_config
from nlp_transfer.data.loading import (
    TextClassificationData,
    TokenClassificationData,
    load_text_classification_data,
    load_token_classification_data,
)
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.evaluation.metrics import scalar_metrics
from nlp_transfer.evaluation.plots import save_confusion_matrix
from nlp_transfer.tasks.classification import SequenceClassificationTask, balanced_class_weights, build_classification_task
from nlp_transfer.tasks.token_classification import TokenClassificationTask, build_token_classification_task
from nlp_transfer.training.loop import (
    evaluate_model,
    fit,
    full_state_dict,
    loader_order,
    make_accelerator,
    make_dataloader,
    remove_checkpoints,
)
from nlp_transfer.transfer.case_vocab import materialize_case_embeddings
from nlp_transfer.transfer.feature_extraction import (
    CachedFeatureHead,
    CachedFeatureTask,
    encode_features,
    with_pooling,
)
from nlp_transfer.transfer.peft_adapters import save_adapter_model
from nlp_transfer.transfer.strategies import (
    apply_strategy,
    count_parameters,
    prepare_model,
    strategy_epoch_callback,
    strategy_step_callback,
)

logger = logging.getLogger(__name__)

Task = SequenceClassificationTask | TokenClassificationTask

RUN_INFO_FILE = "run_info.json"
METRICS_FILE = "metrics.json"
LIBRARIES = ("nlp-transfer", "torch", "transformers", "datasets", "accelerate", "evaluate", "peft", "tokenizers", "scikit-learn")


@dataclass
class RunResult:
    """The outcome of a run: where it is, its metrics per split, and training facts."""

    output_dir: Path
    metrics: dict[str, dict[str, Any]]
    info: dict[str, Any]


def build_task_and_data(config: RunConfig) -> tuple[Task, TextClassificationData | TokenClassificationData]:
    """Read and check the data, then build the task for it (label schema from the training split)."""
    if config.task == "ner":
        tagged = load_token_classification_data(config.data, seed=config.seed)
        if config.training.class_weights == "balanced":
            raise ConfigError("training.class_weights=balanced is for classification tasks; remove it for task=ner.")
        ner = build_token_classification_task(
            model=config.model,
            labels=tagged.labels,
            max_length=config.training.max_length,
            label_all_subwords=config.training.label_all_subwords,
            document_context=config.training.document_context,
            case_vocab=config.transfer.case_vocab,
            trust_remote_code=config.trust_remote_code,
            allow_pickle=config.allow_pickle,
        )
        return ner, tagged
    multi_label = config.task == "multilabel"
    data = load_text_classification_data(config.data, multi_label=multi_label, seed=config.seed)
    weights = None
    if config.training.class_weights == "balanced":
        weights = balanced_class_weights(list(data.splits["train"]["label"]), data.labels, multi_label=multi_label)
    task = build_classification_task(
        model=config.model,
        labels=data.labels,
        multi_label=multi_label,
        max_length=config.training.max_length,
        threshold=config.training.threshold,
        class_weights=weights,
        trust_remote_code=config.trust_remote_code,
        allow_pickle=config.allow_pickle,
    )
    return task, data


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def uses_cached_features(config: RunConfig) -> bool:
    """Whether the run trains its head on cached encoder outputs (frozen strategy, sequence task, cache on)."""
    return config.strategy == "frozen" and config.task != "ner" and config.transfer.cache_features


def check_pooling(config: RunConfig) -> None:
    """Mean pooling is a feature-extraction option of sequence tasks; refuse it elsewhere with the fix."""
    if config.transfer.pooling == "cls":
        return
    if config.strategy != "frozen" or config.task == "ner":
        raise ConfigError(
            f"transfer.pooling={config.transfer.pooling} applies to strategy=frozen on classification or multilabel tasks "
            f"(this run: strategy={config.strategy}, task={config.task}); remove it or set transfer.pooling=cls."
        )


def prepare_output_dir(output_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to write into a non-empty run directory unless ``overwrite`` or ``resume``."""
    if resume:
        if not output_dir.is_dir():
            raise UserError(f"{output_dir}: nothing to resume (no such directory). Start without --resume.")
        return
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise UserError(
                f"{output_dir}: output directory exists and is not empty. Pass --overwrite to replace it, "
                "--resume to continue its training, or set output_dir=ANOTHER_DIR."
            )
        shutil.rmtree(output_dir)


def run_training(config: RunConfig, *, resume: bool = False, overwrite: bool = False, from_scratch: bool = False) -> RunResult:
    """Train, evaluate and save one run as ``config`` says; returns its metrics.

    ``from_scratch`` starts from random weights (the no-transfer baseline of ``nlp-transfer compare``).
    """
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    output_dir = Path(config.output_dir)
    check_pooling(config)
    prepare_output_dir(output_dir, overwrite=overwrite, resume=resume)
    task, data = build_task_and_data(config)

    set_seed(config.seed)
    model = prepare_model(task.build_model(from_scratch=from_scratch), config.strategy, config.transfer)  # lora: a PeftModel
    groups = apply_strategy(
        model,
        config.strategy,
        learning_rate=config.training.learning_rate,
        weight_decay=config.training.weight_decay,
        options=config.transfer,
    )
    trainable, total = count_parameters(model)
    splits = {name: task.preprocess(split, name) for name, split in data.splits.items()}

    accelerator = make_accelerator(config.training, output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / "config.yaml")
    accelerator.wait_for_everyone()
    accelerator.print(
        f"model {task.model_name} ({task.model_source} copy: {task.model_path})\n"
        f"task {config.task}, {len(task.labels)} labels; strategy {config.strategy}: "
        f"{trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%)\n"
        f"data: " + ", ".join(f"{name} {len(split):,} ({data.sources[name]})" for name, split in data.splits.items())
    )
    trained = with_pooling(model, config.transfer.pooling)  # mean pooling: a wrapper whose head reads the mean
    fit_args = dict(
        config=config.training,
        output_dir=output_dir,
        seed=config.seed,
        resume=resume,
        accelerator=accelerator,
        hparams=config_to_dict(config),
    )
    feature_seconds: dict[str, float] = {}
    if uses_cached_features(config):
        features = {}
        for name in ("train", "validation"):
            started = time.perf_counter()
            split = splits[name]
            features[name] = encode_features(
                model,
                split.select_columns([c for c in split.column_names if c in task.batch_columns]).to_list(),
                task.collator(),
                pooling=config.transfer.pooling,
                batch_size=config.training.eval_batch_size,
                device=accelerator.device,
                autocast_dtype=AUTOCAST_DTYPES.get(config.training.mixed_precision),
            )
            feature_seconds[name] = round(time.perf_counter() - started, 2)
        accelerator.print(
            f"feature extraction: encoded {sum(len(f) for f in features.values()):,} texts once "
            f"({sum(feature_seconds.values()):.1f} s); the head trains on the cached vectors"
        )
        cached = CachedFeatureTask(task, features)
        fit_args["config"] = replace(config.training, gradient_checkpointing=False)
        result = fit(
            model=CachedFeatureHead(model),
            task=cached,
            param_groups=groups,
            train_dataset=cached.dataset(splits["train"], "train"),
            eval_dataset=cached.dataset(splits["validation"], "validation"),
            **fit_args,
        )
        result.model = trained  # the head's weights are the model's own: the best ones are loaded into it
    else:
        result = fit(
            model=trained,
            task=task,
            param_groups=groups,
            train_dataset=splits["train"],
            eval_dataset=splits["validation"],
            epoch_callback=strategy_epoch_callback(model, config.strategy, config.transfer),
            step_callback=strategy_step_callback(model, config.strategy, config.transfer),
            **fit_args,
        )

    metrics: dict[str, dict[str, Any]] = {}
    for name in ("validation", "test"):
        if name in splits:
            loader, sampler = make_dataloader(
                splits[name],
                task.collator(),
                config.training.eval_batch_size,
                shuffle=False,
                seed=config.seed,
                group_by_length=True,
                columns=task.batch_columns,
            )
            metrics[name] = evaluate_model(
                result.model, accelerator.prepare(loader), task, accelerator, dataset=splits[name], order=loader_order(sampler)
            )

    info = {
        "task": config.task,
        "strategy": config.strategy,
        "from_scratch": from_scratch,
        "base_model": task.model_name,
        "base_model_source": task.model_source,
        "labels": task.labels,
        "threshold": getattr(task, "threshold", None) if task.multi_label else None,
        "max_length": task.max_length,
        "document_context": getattr(task, "document_context", 0),
        "trainable_parameters": trainable,
        "total_parameters": total,
        # gradual unfreezing trains more of the model each epoch: the count above is epoch 1's
        "trainable_parameters_last_epoch": count_parameters(result.model)[0],
        "pooling": config.transfer.pooling if config.task != "ner" else None,
        "cached_features": uses_cached_features(config),
        # cached features: encoding time per split; train's counts as training time, validation's as evaluation
        "feature_encoding_seconds": feature_seconds,
        "best_step": result.best_step,
        "best_metric": {result.metric_name: result.best_metric},
        "global_steps": result.global_step,
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.train_seconds + feature_seconds.get("train", 0.0), 2),
        "train_samples_per_second": round(result.train_samples_per_second, 2),
        "examples": {name: len(split) for name, split in data.splits.items()},
        "truncated_texts": dict(task.truncated),
        "data_files": data_provenance(config),
        "history": result.history,
        "versions": library_versions(),
        "num_processes": accelerator.num_processes,
        "mixed_precision": config.training.mixed_precision,
    }
    state_dict = full_state_dict(accelerator, result.prepared_model)  # FSDP / ZeRO-3: gathered on every process
    if config.transfer.case_vocab:  # a plain embedding matrix for the cased vocabulary
        state_dict = materialize_case_embeddings(result.model, state_dict)
    if accelerator.is_main_process:
        save_run(output_dir, result.model, task, metrics, info, transfer=config.transfer, state_dict=state_dict)
        if not config.training.keep_checkpoints:
            remove_checkpoints(output_dir)
    accelerator.wait_for_everyone()
    accelerator.print(format_metrics(metrics, output_dir))
    if config.hub.push and accelerator.is_main_process:
        from nlp_transfer.hub import push_configured_run

        accelerator.print(f"pushed to {push_configured_run(config.hub, output_dir)}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return RunResult(output_dir=output_dir, metrics=metrics, info=info)


def save_run(
    output_dir: Path,
    model: torch.nn.Module,
    task: Task,
    metrics: dict[str, Any],
    info: dict[str, Any],
    transfer: TransferConfig | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the model and tokenizer (``save_pretrained``, safetensors), metrics, plots and run info.

    A PEFT model writes RUN_DIR/adapter and, with ``transfer.save_merged``, the merged plain model.
    ``state_dict`` (the gathered weights of a sharded run) is saved in place of the model's own.
    """
    if not save_adapter_model(model, output_dir, transfer):
        model.save_pretrained(output_dir, safe_serialization=True, state_dict=state_dict)
    task.tokenizer.save_pretrained(output_dir)
    for split, values in metrics.items():
        if "confusion_matrix" in values:
            save_confusion_matrix(
                values["confusion_matrix"], output_dir / f"confusion_matrix_{split}.png", title=f"Confusion matrix ({split})"
            )
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (output_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")


def format_metrics(metrics: dict[str, dict[str, Any]], output_dir: Path) -> str:
    """A short table of the headline metrics per split."""
    lines = [f"\nResults (saved in {output_dir}):"]
    for split, values in metrics.items():
        numbers = scalar_metrics(values)
        shown = [
            k
            for k in (
                "precision",
                "recall",
                "f1",
                "accuracy",
                "f1_macro",
                "f1_micro",
                "subset_accuracy",
                "precision_macro",
                "recall_macro",
                "roc_auc",
            )
            if k in numbers
        ]
        lines.append(f"  {split:<11}" + "  ".join(f"{k}={numbers[k]:.4f}" for k in shown))
    return "\n".join(lines)


def data_provenance(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Path, size and sha256 of each local data file of the run."""
    files = {}
    for split in ("train_file", "validation_file", "test_file"):
        path = getattr(config.data, split)
        if path and Path(path).is_file():
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            files[split] = {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": digest}
        elif path:
            files[split] = {"name": str(path)}
    return files


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
