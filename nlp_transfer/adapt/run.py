"""One adaptation run: texts -> tokenizer and masked-LM model -> held-out loss -> the loop -> held-out loss -> model folder.

Everything that can be refused (config, files, texts, tokenizer, model) is checked before the run
directory is created, so bad input leaves nothing behind. Training is ``training.loop.fit`` unchanged:
progress, checkpoints every evaluation (and ``training.save_steps``) and exact ``--resume``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from nlp_transfer import pipeline
from nlp_transfer.adapt.masking import MaskEpoch, check_maskable
from nlp_transfer.adapt.model import MaskedLMScorer, base_weights_to_keep, build_masked_lm, save_adapted, train_head_only
from nlp_transfer.adapt.task import MaskedLMTask
from nlp_transfer.adapt.texts import UnlabelledTexts, read_texts, text_files
from nlp_transfer.config import RunConfig, config_to_dict
from nlp_transfer.config.checks import checks_for_adapt
from nlp_transfer.config.parse import checked_config
from nlp_transfer.errors import DataError, UserError
from nlp_transfer.files import write_text_atomic
from nlp_transfer.models import resolve_with_tokenizer
from nlp_transfer.output_dir import replaced_on_success
from nlp_transfer.pipeline import METRICS_FILE, check_resumed_config, start_run_dir
from nlp_transfer.run_info import RUN_INFO_FILE, RunInfo, data_provenance, library_versions, training_facts
from nlp_transfer.threads import restores_torch_threads
from nlp_transfer.training.accelerator import make_accelerator
from nlp_transfer.training.evaluation import evaluate_model
from nlp_transfer.training.loop import FitResult, fit
from nlp_transfer.transfer import count_parameters

NEW_HEAD_NOTE = (
    "note: this model ships without a masked-LM head, so a new one learns from scratch while the encoder adapts; "
    "on the default model that lowered downstream accuracy on average (docs/adapt.md, Measured). "
    "Fine-tune the base and the adapted model and keep the better on validation, or adapt a model that has its head."
)
MARKER_FILE = "adapt.json"  # says "an adaptation run" from the start, so --resume refuses other runs' folders


@dataclass
class AdaptResult:
    """Where the adapted model is, and the held-out masked-LM metrics before and after."""

    output_dir: Path
    before: dict[str, Any]
    after: dict[str, Any]
    info: dict[str, Any]


@dataclass
class Prepared:
    """What a run needs once every input has been checked."""

    texts: UnlabelledTexts
    task: MaskedLMTask
    train: Any
    heldout: Any
    model_name: str
    model_source: str
    model_path: str


@restores_torch_threads
def run_adaptation(config: RunConfig, *, resume: bool = False, overwrite: bool = False) -> AdaptResult:
    """Masked-LM training of ``config.model`` on the texts of ``data.train_file``; writes ``output_dir``.

    With ``overwrite`` the earlier run moves aside only once every input has loaded, and comes back if this run fails
    before its first checkpoint (:func:`nlp_transfer.output_dir.replaced_on_success`).
    """
    with checks_for_adapt():
        config = checked_config(config)  # a RunConfig built in Python gets the checks a config file gets
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    output_dir = Path(config.output_dir)
    replace = check_output_dir(
        output_dir,
        resume=resume,
        overwrite=overwrite,
        model=config.model,
        data_files=tuple(text_files(config.data)) if config.data.train_file else (),
    )
    prepared = prepare_inputs(config)
    set_seed(config.seed)
    model, new_head = build_masked_lm(
        prepared.model_path, prepared.model_name, allow_pickle=config.allow_pickle, trust_remote_code=config.trust_remote_code
    )
    keep = base_weights_to_keep(
        prepared.model_path, model, allow_pickle=config.allow_pickle, trust_remote_code=config.trust_remote_code
    )
    if head_only(config):
        train_head_only(model)
    if resume:
        check_resumed_config(config, output_dir)
    accelerator = make_accelerator(config.training, output_dir)  # writes nothing: the earlier run can still move aside
    with replaced_on_success(output_dir, replace, accelerator):
        start_run_dir(config, output_dir, accelerator)
        if accelerator.is_main_process:
            (output_dir / MARKER_FILE).write_text(json.dumps({"kind": "masked-lm adaptation"}) + "\n", encoding="utf-8")
        result = adapt_and_save(config, prepared, (model, keep, new_head), accelerator, resume)
    accelerator.end_training()
    return result


def adapt_and_save(
    config: RunConfig, prepared: Prepared, built: tuple[Any, Any, bool], accelerator: Any, resume: bool
) -> AdaptResult:
    """Score the held-out masks, train through ``fit``, score them again and write the adapted model folder."""
    model, keep, new_head = built
    output_dir = Path(config.output_dir)
    scorer = MaskedLMScorer(model)
    training = loop_settings(config)
    before = evaluate_model(scorer, prepared.heldout, prepared.task, accelerator, training.eval_batch_size)
    accelerator.print(describe(prepared, model, new_head, before))
    result = fit(
        model=scorer,
        task=prepared.task,
        param_groups=parameter_groups(scorer, training.weight_decay),
        train_dataset=prepared.train,
        eval_dataset=prepared.heldout,
        config=training,
        output_dir=output_dir,
        seed=config.seed,
        resume=resume,
        accelerator=accelerator,
        hparams=config_to_dict(config),
        callbacks=[MaskEpoch(prepared.task.collator())],
    )
    after = evaluate_model(scorer, prepared.heldout, prepared.task, accelerator, training.eval_batch_size)
    info = run_report(config, prepared, model, result, before, after, new_head, accelerator.num_processes)
    if accelerator.is_main_process:
        write_outputs(config, prepared, model, keep, before, after, info)
    accelerator.wait_for_everyone()
    accelerator.print(f"held-out masked-LM loss {before['loss']:.4f} -> {after['loss']:.4f}; adapted model in {output_dir}")
    return AdaptResult(output_dir, before, after, info)


def check_output_dir(
    output_dir: Path, *, resume: bool, overwrite: bool, model: str | None = None, data_files: tuple[str, ...] = ()
) -> bool:
    """Refuse, before anything is read, what a training run refuses, and resuming a folder that is not an adapt run.

    Returns True when ``output_dir`` holds an earlier run that ``overwrite`` replaces.
    """
    pipeline.check_model_outside(model, output_dir)
    if resume and output_dir.is_dir() and not (output_dir / MARKER_FILE).is_file():
        raise UserError(
            f"{output_dir}: not an adapt run (no {MARKER_FILE}), so --resume cannot continue it. "
            "Set output_dir to the adapt run to resume, or start without --resume."
        )
    return pipeline.check_output_dir(output_dir, overwrite=overwrite, resume=resume, data_files=data_files)


def window_stride(config: RunConfig, tokenizer: Any) -> int | None:
    """The overlap of a long text's windows with ``training.long_text=windows`` (``training.window_stride``, or none:
    a masked-LM window needs no context from the one before); None when long texts are truncated."""
    if config.training.long_text != "windows":
        return None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"model '{config.model}': training.long_text=windows needs a fast tokenizer (tokenizer.json) to cut windows. "
            "Save the model's fast tokenizer in its folder, or set training.long_text=truncate."
        )
    return config.training.window_stride or 0


def prepare_inputs(config: RunConfig) -> Prepared:
    """Read and check the texts, the tokenizer and the held-out masks; nothing is written."""
    texts = read_texts(config.data, config.seed)
    resolved, tokenizer = resolve_with_tokenizer(
        config.model, trust_remote_code=config.trust_remote_code, max_length=config.training.max_length
    )
    words = check_maskable(tokenizer, config.model)
    task = MaskedLMTask(
        tokenizer, words, config.seed, max_length=config.training.max_length, window_stride=window_stride(config, tokenizer)
    )
    train = task.preprocess(texts.train, "train")
    heldout = task.preprocess(texts.heldout, "validation", fixed_masks=True)
    if not any(label != -100 for labels in heldout["labels"][:] for label in labels):
        raise DataError(
            f"{texts.files[0]}: the held-out lines are too short to mask a word. Give more text, or raise data.validation_split."
        )
    return Prepared(texts, task, train, heldout, resolved.name, resolved.source, resolved.path)


def head_only(config: RunConfig) -> bool:
    """``strategy: frozen`` trains the masked-LM head alone; every other strategy adapts the whole model."""
    return config.strategy == "frozen"


def loop_settings(config: RunConfig) -> Any:
    """The run's ``training`` settings, with the held-out masked-LM loss as the metric that picks the best model."""
    return dataclasses.replace(config.training, metric_for_best_model="loss", class_weights="none")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: weight decay on matrices, none on biases and LayerNorm weights; each once."""
    decay, no_decay, seen = [], [], set()
    for name, parameter in model.named_parameters():
        if id(parameter) in seen or not parameter.requires_grad:
            continue
        seen.add(id(parameter))
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def describe(prepared: Prepared, model: torch.nn.Module, new_head: list[str], before: dict[str, Any]) -> str:
    """What the run trains: model, head, texts and the starting held-out loss."""
    trainable, total = count_parameters(model)
    return (
        f"model {prepared.model_name} ({prepared.model_source} copy: {prepared.model_path}), masked-LM head: "
        f"{'new (' + str(len(new_head)) + ' tensors initialised)' if new_head else 'from the checkpoint'}, decoder tied; "
        f"{trainable:,} of {total:,} parameters train\n"
        f"texts: train {len(prepared.train):,}, held out {len(prepared.heldout):,} ({', '.join(prepared.texts.files)}); "
        f"whole words by {prepared.task.words}\n"
        f"held-out masked-LM loss before: {before['loss']:.4f} (perplexity {before['perplexity']:.1f})"
        + (f"\n{NEW_HEAD_NOTE}" if new_head and trainable == total else "")  # not when the head trains alone
    )


def run_report(
    config: RunConfig,
    prepared: Prepared,
    model: torch.nn.Module,
    result: FitResult,
    before: dict[str, Any],
    after: dict[str, Any],
    new_head: list[str],
    processes: int,
) -> dict[str, Any]:
    """run_info.json: the usual :class:`RunInfo` facts plus a ``masked_lm`` section (held-out loss before and after)."""
    trainable, total = count_parameters(model)
    files = {("train_file" if i == 0 else f"train_file_{i + 1}"): path for i, path in enumerate(prepared.texts.files)}
    info = RunInfo(
        task="masked-lm",
        strategy="frozen" if head_only(config) else "full",
        base_model=prepared.model_name,
        base_model_source=prepared.model_source,
        max_length=config.training.max_length,
        trainable_parameters=trainable,
        total_parameters=total,
        trainable_parameters_last_epoch=trainable,
        **training_facts(result),
        examples={"train": len(prepared.train), "validation": len(prepared.heldout)},
        truncated_texts=dict(prepared.task.truncated),
        data_files=data_provenance(files),
        versions=library_versions(),
        num_processes=processes,
        mixed_precision=config.training.mixed_precision,
    ).to_dict()
    per_text = result.train_seconds / max(result.train_samples_per_second * result.train_seconds, 1)
    info["masked_lm"] = {
        "heldout_before": before,
        "heldout_after": after,
        "heldout_lines": len(prepared.heldout),
        "heldout_seed": config.seed,
        "mask_probability": prepared.task.probability,
        "mask_replacement": {"mask_token": 0.8, "random_token": 0.1, "unchanged": 0.1},
        "whole_words": prepared.task.words,
        "file_formats": prepared.texts.formats,
        "initialised_head_weights": new_head,
        "decoder_tied_to_embeddings": True,
        "seconds_per_1000_texts": round(1000 * per_text, 2),
    }
    return info


def write_outputs(
    config: RunConfig,
    prepared: Prepared,
    model: torch.nn.Module,
    keep: dict[str, torch.Tensor],
    before: dict[str, Any],
    after: dict[str, Any],
    info: dict[str, Any],
) -> None:
    """The model folder (weights, config, tokenizer), metrics.json and run_info.json; checkpoints go unless kept."""
    output_dir = Path(config.output_dir)
    save_adapted(model, output_dir, keep)
    prepared.task.tokenizer.save_pretrained(output_dir)
    metrics = {"before": before, "after": after}
    write_text_atomic(output_dir / METRICS_FILE, json.dumps(metrics, indent=2))  # whole, and run_info.json last:
    write_text_atomic(output_dir / RUN_INFO_FILE, json.dumps(info, indent=2))  # the run is finished once both are
    if not config.training.keep_checkpoints:
        pipeline.remove_resume_state(output_dir)
