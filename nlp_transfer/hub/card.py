"""The model card (README.md) of a pushed run, written from its run_info.json, metrics.json and config.yaml."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError
from nlp_transfer.hub.files import (
    file_list,
    looks_like_hub_id,
    public_name,
    read_config_yaml,
    read_json,
    without_local_paths,
    without_paths_in_text,
)
from nlp_transfer.hub.usage import run_mask_token, usage_snippet
from nlp_transfer.run_info import RUN_INFO_FILE, RunInfo

PIPELINE_TAGS = {
    "classification": "text-classification",
    "multilabel": "text-classification",
    "ner": "token-classification",
    "token_classification": "token-classification",
    "token-classification": "token-classification",
    "masked-lm": "fill-mask",  # nlp-transfer adapt: an encoder further pretrained on unlabelled text
}


METRIC_NAMES = {
    "accuracy": ("accuracy", None, "Accuracy"),
    "f1_macro": ("f1", "macro", "F1 (macro)"),
    "f1_micro": ("f1", "micro", "F1 (micro)"),
    "f1_weighted": ("f1", "weighted", "F1 (weighted)"),
    "f1": ("f1", None, "F1"),
    "precision_macro": ("precision", "macro", "Precision (macro)"),
    "recall_macro": ("recall", "macro", "Recall (macro)"),
    "precision": ("precision", None, "Precision"),
    "recall": ("recall", None, "Recall"),
    "roc_auc": ("roc_auc", None, "ROC AUC"),
    "subset_accuracy": ("accuracy", "subset", "Subset accuracy"),
    "hamming_loss": ("hamming_loss", None, "Hamming loss"),
}


def _base_model_license(base_model: str | None) -> str | None:
    """The license in the base model's own card, when a copy of it is available offline."""
    if not base_model:
        return None
    candidates: list[Path] = []
    local = Path(base_model).expanduser()
    if local.is_dir():
        candidates.append(local / "README.md")
    else:
        from nlp_transfer.models import packaged_model_path

        packaged = packaged_model_path(base_model)
        if packaged:
            candidates.append(Path(packaged) / "README.md")
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base_model, "README.md")
            if isinstance(cached, str):
                candidates.append(Path(cached))
        except Exception:  # an invalid id or an unreadable cache: no license from there
            pass
    from huggingface_hub import metadata_load

    for path in candidates:
        if path.is_file():
            try:
                value = (metadata_load(path) or {}).get("license")
            except Exception:
                continue
            if isinstance(value, str) and value:
                return value
    return None


def read_run_info(run_dir: Path) -> RunInfo:
    """The run's :class:`RunInfo`; a UserError naming the file when it is not valid JSON."""
    try:
        return RunInfo.read(run_dir)
    except ValueError as err:
        raise UserError(f"{run_dir / RUN_INFO_FILE}: not valid JSON ({err}).") from None
    except AttributeError:  # valid JSON, but not an object: nothing known about the run
        return RunInfo()


def _dataset_entries(info: RunInfo) -> list[tuple[str, str, str]]:
    """(split, dataset id, display name) for the train/validation/test data of the run."""
    entries = []
    for key, value in (info.data_files or {}).items():
        split = key.removesuffix("_file")
        if not isinstance(value, dict):
            continue
        if value.get("name"):  # a Hub dataset name
            entries.append((split, str(value["name"]), str(value["name"])))
        elif value.get("path"):
            files = [public_name(part) for part in file_list(str(value["path"]))]  # adapt's list of files: each by name
            suffix = Path(files[0]).suffix.lower()
            entries.append((split, LOCAL_DATASET_TYPES.get(suffix, "text"), ", ".join(files)))
    return entries


#: a local file's model-index ``dataset.type``: the name of the ``datasets`` builder that reads its format, as the
#: Trainer's cards write for local data (a folder name there would link to an unrelated Hub dataset of that name)
LOCAL_DATASET_TYPES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def _scalar_metrics(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}


def _eval_results(info: RunInfo, metrics: dict[str, Any], pipeline_tag: str) -> list[Any]:
    """The model-index entries (``huggingface_hub.EvalResult``) of the metrics the Hub knows by name."""
    from huggingface_hub import EvalResult

    datasets = {split: (ds_id, name) for split, ds_id, name in _dataset_entries(info)}
    results = []
    for split, values in metrics.items():
        if not isinstance(values, dict):
            continue
        ds_id, name = _split_dataset(split, datasets, info)
        for key, value in _scalar_metrics(values).items():
            if key not in METRIC_NAMES:
                continue
            metric_type, metric_config, pretty = METRIC_NAMES[key]
            results.append(
                EvalResult(
                    task_type=pipeline_tag,
                    dataset_type=ds_id,
                    dataset_name=name,
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_value=round(value, 4),
                    metric_config=metric_config,
                    metric_name=f"{split.capitalize()} {pretty}",
                )
            )
    return results


def _split_dataset(split: str, datasets: dict[str, tuple[str, str]], info: RunInfo) -> tuple[str, str]:
    """The model-index (dataset type, dataset name) of a metrics split: its own recorded file or Hub dataset; a
    validation split held out of the training file is named after that file; a split of a Hub dataset read whole
    is named after the dataset. A split whose file the run did not record claims no file's name."""
    if split in datasets:
        return datasets[split]
    train = datasets.get("train")
    if split == "validation" and train:
        return train[0], f"{train[1]} (held-out part)"
    recorded = (info.data_files or {}).get("train_file")
    hub_name = recorded.get("name") if isinstance(recorded, dict) else None
    if hub_name:  # data.train_file named a Hub dataset: its other splits come from the same dataset
        return str(hub_name), str(hub_name)
    return "custom", "custom data"


def _read_by(key: str, strategy: str) -> bool:
    """Whether a run of ``strategy`` reads ``transfer.<key>``: a card lists a setting only for the strategies that read
    it, so a full fine-tuning run does not show LoRA ranks it never used."""
    from nlp_transfer.transfer.base import strategies_reading

    readers = strategies_reading(key)
    return readers is None or strategy in readers


#: settings that one task alone reads: the card of a run of another task leaves them out
TASK_ONLY_SETTINGS = {
    "training.threshold": "multilabel",  # the sigmoid score a label needs; single-label runs take the argmax
    "training.label_all_subwords": "ner",
    "training.document_context": "ner",
    "transfer.case_vocab": "ner",  # cased ids for an uncased WordPiece tokenizer, refused for other tasks
}


def _hyperparameters(config: dict[str, Any], task: str | None = None) -> list[tuple[str, Any]]:
    """(name, value) rows of the training settings, the transfer section and the seed of the resolved config: only
    those the run's task and strategy read."""
    training = config.get("training") or {}
    task = str(task or config.get("task") or "classification")
    keys = (
        "epochs", "batch_size", "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm",
        "gradient_accumulation_steps", "max_length", "mixed_precision", "class_weights", "metric_for_best_model",
        "early_stopping_patience", "threshold", "label_all_subwords", "document_context",
    )  # fmt: skip
    masked_lm = task == "masked-lm"  # adapt ignores the transfer section and picks by loss
    rows = [
        (f"training.{k}", training[k])
        for k in keys
        if k in training and TASK_ONLY_SETTINGS.get(f"training.{k}", task) == task
        and not (masked_lm and k in ("metric_for_best_model", "class_weights"))
    ]  # fmt: skip
    if not masked_lm:
        strategy = str(config.get("strategy") or "full")
        transfer = (config.get("transfer") or {}).items()
        rows += [
            (f"transfer.{k}", v)
            for k, v in transfer
            if _read_by(k, strategy) and TASK_ONLY_SETTINGS.get(f"transfer.{k}", task) == task
        ]
    if "seed" in config:
        rows.append(("seed", config["seed"]))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


@dataclass
class _CardFacts:
    """What the model card says about a run, gathered once from its run_info.json, metrics.json and config.yaml."""

    run_dir: Path
    repo_id: str
    adapter: bool
    info: RunInfo
    metrics: dict[str, Any]
    config: dict[str, Any]
    task: str
    strategy: str
    pipeline_tag: str
    base_model: str | None
    base_is_hub: bool
    license: str | None

    @property
    def name(self) -> str:
        """The model's name: the repository name without its owner."""
        return self.repo_id.split("/")[-1]


def _card_facts(run_dir: Path, repo_id: str, license: str | None, adapter: bool) -> _CardFacts:
    """Read the run's files and settle the task, strategy, base model and license the card states."""
    info = read_run_info(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    config = read_config_yaml(run_dir / "config.yaml") or {}
    config = without_local_paths(config) if isinstance(config, dict) else {}
    task = str(info.task or config.get("task") or "classification")
    base_model = info.base_model or config.get("model")
    shown = public_name(str(base_model)) if base_model else None  # a local folder is named, its path never published
    return _CardFacts(
        run_dir=run_dir,
        repo_id=repo_id,
        adapter=adapter,
        info=info,
        metrics=metrics,
        config=config,
        task=task,
        strategy=str(info.strategy or config.get("strategy") or "full"),
        pipeline_tag=PIPELINE_TAGS.get(task, "text-classification"),
        base_model=shown,
        base_is_hub=bool(base_model) and looks_like_hub_id(str(base_model)),
        license=license or _base_model_license(base_model),
    )


def _card_metadata(facts: _CardFacts) -> Any:
    """The card's YAML metadata (``ModelCardData``), with the model-index of its metrics."""
    from huggingface_hub import ModelCardData

    # the front matter's datasets link to Hub dataset repositories: only Hub names go there, never local file names
    datasets = sorted({str(v["name"]) for v in (facts.info.data_files or {}).values() if isinstance(v, dict) and v.get("name")})
    tags = ["nlp-transfer", facts.task, facts.strategy, facts.pipeline_tag] + (["lora", "peft"] if facts.adapter else [])
    metric_types = {METRIC_NAMES[k][0] for v in facts.metrics.values() if isinstance(v, dict) for k in v if k in METRIC_NAMES}
    return ModelCardData(
        library_name="peft" if facts.adapter else "transformers",
        pipeline_tag=facts.pipeline_tag,
        base_model=str(facts.base_model) if facts.base_is_hub else None,
        license=facts.license,
        datasets=datasets or None,
        tags=list(dict.fromkeys(tags)),
        metrics=sorted(metric_types) or None,
        model_name=facts.name,
        eval_results=_eval_results(facts.info, facts.metrics, facts.pipeline_tag) or None,
    )


def _intro_section(facts: _CardFacts) -> list[str]:
    """The title, what the model is fine-tuned from and how, and a note when no license was set."""
    what = "A LoRA adapter for" if facts.adapter else "A fine-tuned version of"
    base = facts.base_model
    base_text = f"[{base}](https://huggingface.co/{base})" if facts.base_is_hub else f"`{base or 'a local model'}`"
    how = f"for **{facts.pipeline_tag}** ({facts.task}), trained with nlp-transfer using the **{facts.strategy}** transfer strategy."
    if facts.task == "masked-lm":
        what, how = "A version of", "further pretrained with masked language modelling on unlabelled text (`nlp-transfer adapt`)."
    lines = [f"# {facts.name}", "", f"{what} {base_text} {how}", ""]
    if not facts.license:
        lines += ["No license was set: pass `--license ID` when pushing to state one.", ""]
    return lines


def _labels_section(facts: _CardFacts) -> list[str]:
    """The label list, and the decision threshold of a multi-label model."""
    labels = [str(label) for label in facts.info.labels or []]
    if facts.task == "masked-lm":
        return []
    lines = ["## Labels", ""]
    lines += [", ".join(f"`{label}`" for label in labels) if labels else "See `config.json` (`id2label`).", ""]
    if facts.info.task == "multilabel":
        threshold = 0.5 if facts.info.threshold is None else facts.info.threshold
        lines += [f"Multi-label: a label is predicted when its sigmoid score reaches {threshold}.", ""]
    return lines


def _training_data_section(facts: _CardFacts) -> list[str]:
    """A table of the splits: their data file or dataset and their number of examples; the training split's rows
    from its file apart from the rows a run added to them (augmented copies, label-name rows, pseudo-labels)."""
    lines = ["## Training data", "", "| split | data | examples |", "|---|---|---|"]
    examples = facts.info.examples or {}
    entries = {split: name for split, _, name in _dataset_entries(facts.info)}
    order, total_line = {"train": 0, "validation": 1, "test": 2}, ""
    for split in sorted(set(examples) | set(entries), key=lambda s: (order.get(s, 3), s)):
        source = entries.get(split, "held out from train")
        rows = _training_rows(facts, source) if split == "train" else [(source, examples.get(split, ""))]
        lines += [f"| {split} | {_fmt(data)} | {_fmt(count)} |" for data, count in rows]
        if len(rows) > 1:
            total_line = f"The training split held {_fmt(examples.get(split))} rows in all."
    lines.append("")
    if total_line:
        lines += [total_line, ""]
    return lines + _self_training_lines(facts)


def _training_rows(facts: _CardFacts, source: str) -> list[tuple[str, Any]]:
    """(data, examples) rows of the training split: those read from ``source`` (and how they were sampled), then each
    kind of row the run added. A record whose additions outnumber its training rows is shown as recorded."""
    info, data = facts.info, facts.config.get("data") or {}
    total = (info.examples or {}).get("train", "")
    added: list[tuple[str, int]] = []
    if info.label_examples:
        added.append(("rows written from the label names (`data.label_examples`)", int(info.label_examples)))
    for name, count in (info.augmented_examples or {}).items():
        added.append((f"{name} copies of rows from the file (`data.augment`)", int(count)))
    if info.pseudo_labeled_examples:
        added.append((_pseudo_label_source(facts), int(info.pseudo_labeled_examples)))
    from_file = total - sum(count for _, count in added) if isinstance(total, int) else -1
    if from_file < 0:
        return [(source, total)]
    if data.get("per_class"):
        seed = data.get("sample_seed", 0)
        source += f", a sample of {data['per_class']} rows per class (`data.per_class`, `data.sample_seed` {seed})"
    elif data.get("max_train_samples"):
        source += f", its first {data['max_train_samples']} rows (`data.max_train_samples`)"
        if not data.get("validation_file") and from_file < data["max_train_samples"]:
            source += " less the validation rows held out of them"
    return [(source, from_file), *added]


def _pseudo_label_source(facts: _CardFacts) -> str:
    """Where a run's pseudo-labelled training rows came from: a self-training round's teacher, or a file of them."""
    summary = facts.info.self_training or {}
    rounds = [r for r in summary.get("rounds") or [] if isinstance(r, dict)]
    if summary and rounds:
        unlabeled = public_name(str(summary.get("unlabeled_file") or "the unlabelled file"))
        teacher = int(rounds[-1].get("round", 1)) - 1
        return f"texts of {unlabeled} labelled by the round-{teacher} model (self-training, `data.unlabeled_file`)"
    file = (facts.config.get("data") or {}).get("pseudo_labeled_file")
    return f"machine-labelled rows of {public_name(str(file))} (`data.pseudo_labeled_file`)" if file else "pseudo-labelled rows"


def _self_training_lines(facts: _CardFacts) -> list[str]:
    """A sentence on a self-training run's rounds and which of them the model is (none for other runs)."""
    summary = facts.info.self_training or {}
    rounds = [r for r in summary.get("rounds") or [] if isinstance(r, dict)]
    if not rounds:
        return []
    unlabeled = public_name(str(summary.get("unlabeled_file") or "the unlabelled file"))
    text = (
        f"Self-training on {summary.get('unlabeled_texts', '?')} unlabelled texts of {unlabeled} (pseudo-labels kept "
        f"from a score of {summary.get('threshold', '?')}): {len(rounds)} round(s) trained, each a fresh model; "
        f"this is round {rounds[-1].get('round', len(rounds) - 1)}'s model."
    )
    stopped = summary.get("stopped_at_round")
    if stopped is not None:
        text += f" Round {stopped} did not train: its teacher kept no pseudo-label, so the rounds stopped there."
    return [text, ""]


def _adapted_modules(run_dir: Path) -> str:
    """The modules an adapter run adapted when the config left ``transfer.lora_target_modules`` to the model type's
    default: read from RUN_DIR/adapter/adapter_config.json."""
    try:
        targets = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))["target_modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return "the model type's default"
    return f"default: {sorted(targets)}" if isinstance(targets, list) else f"default: {targets}"


def _training_procedure_section(facts: _CardFacts) -> list[str]:
    """The share of parameters trained, the hyperparameters, and the steps and time the run took."""
    info = facts.info
    lines = ["## Training procedure", ""]
    trainable, total, last = info.trainable_parameters, info.total_parameters, info.trainable_parameters_last_epoch
    if trainable and total:
        share = 100 * trainable / total
        trained = f"{trainable:,} of {total:,} parameters trained ({share:.2f} %)"
        if last > trainable:  # gradual unfreezing: more of the model trains each phase
            trained = (
                f"{trainable:,} of {total:,} parameters trained at the start, {last:,} ({100 * last / total:.2f} %) at the end"
            )
        lines += [f"Strategy `{facts.strategy}`: {trained}.", ""]
    hyper = [(k, _adapted_modules(facts.run_dir) if k == "transfer.lora_target_modules" and v is None else v) for k, v in
             _hyperparameters(facts.config, facts.task)]  # fmt: skip
    if hyper:
        lines += ["| hyperparameter | value |", "|---|---|"] + [f"| `{k}` | {_fmt(v)} |" for k, v in hyper] + [""]
    if info.global_steps:  # a run that recorded its training (not an empty record)
        steps = [
            ("optimizer steps", info.global_steps),
            ("best step", info.best_step),
            ("training time (s)", info.train_seconds),
            ("stopped early", info.stopped_early),
        ]
        lines += ["; ".join(f"{label}: {_fmt(value)}" for label, value in steps) + ".", ""]
    return lines


def _evaluation_section(facts: _CardFacts) -> list[str]:
    """One metrics table per evaluated split, with its confusion matrix when the run plotted one."""
    lines = ["## Evaluation", ""]
    for split, values in facts.metrics.items():
        if not isinstance(values, dict):
            continue
        numbers = _scalar_metrics(values)
        if not numbers:
            continue
        lines += [f"### {split}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in numbers.items()] + [""]
        image = f"confusion_matrix_{split}.png"
        if (facts.run_dir / image).is_file():
            lines += [f"![Confusion matrix ({split})]({image})", ""]
    if not facts.metrics:
        lines += ["No metrics were recorded for this run.", ""]
    return lines


def _usage_section(facts: _CardFacts) -> list[str]:
    """How to load and run the pushed model."""
    model_type = str(read_json(facts.run_dir / "config.json").get("model_type", "bert"))
    mask = run_mask_token(facts.run_dir)
    return ["## How to use", "", usage_snippet(facts.repo_id, facts.info, facts.pipeline_tag, facts.adapter, model_type, mask)]


def _limitations_section(facts: _CardFacts) -> list[str]:
    """What the model cannot be expected to do, and what ``nlp-transfer check`` measured if the run was checked."""
    long_text = _long_input_line(facts)
    knows = "" if facts.task == "masked-lm" else "only knows the labels above, and "
    return [
        "## Bias, risks and limitations",
        "",
        f"- The model {knows}inherits the language coverage and the biases of its base model and of the training data.",
        "- The metrics come from the evaluation data listed above; expect lower scores on text from other domains.",
        long_text,
        *_checked_figures(facts.run_dir),
        "",
    ]


def _long_input_line(facts: _CardFacts) -> str:
    """The card line on inputs longer than the run's max_length, as the run's task read them: NER split long
    sentences into windows of whole words, ``training.long_text: windows`` pooled windows, the rest truncated."""
    max_length = "the maximum length" if facts.info.max_length is None else facts.info.max_length
    if facts.task == "ner":
        return (
            f"- A sentence longer than {max_length} subwords was split into windows of whole words in training and "
            "evaluation, and nlp-transfer's `predict` splits a long text the same way: no word is dropped. The "
            "`transformers.pipeline` snippet reads a long text in overlapping windows of the tokenizer's maximum length "
            "(`stride`), so tags near the edge of a window can differ from `predict`'s."
        )
    if facts.task != "masked-lm" and (facts.config.get("training") or {}).get("long_text") == "windows":
        return (
            f"- Inputs longer than {max_length} tokens were read as overlapping windows whose scores are pooled "
            "(`training.long_text: windows`); `transformers.pipeline` truncates them instead."
        )
    return f"- Inputs longer than {max_length} tokens were truncated in training."


def _checked_figures(run_dir: Path) -> list[str]:
    """Card lines with the figures of ``RUN_DIR/check/check.json``, if any: calibration, behaviour, bias, slices."""
    from nlp_transfer.check.report_md import card_lines

    report = read_json(run_dir / "check" / "check.json")
    if not report:
        return []
    if "calibration" not in report:  # a NER run: behavioural tests only
        return card_lines(report)
    c, s = report["calibration"], report["selective"]
    applied = (
        "`calibration.json` stores it; nlp-transfer applies it, `transformers.pipeline` does not (divide the logits by it)"
        if c.get("applied", True)
        else "reported only: the multi-label threshold was set on the raw scores"
    )
    # `check --data /home/me/test.csv` names a local file: the sources lose their folders (labels and slices keep theirs)
    scored_on, fitted_on = without_paths_in_text(str(report["scored_on"])), without_paths_in_text(str(report["fitted_on"]))
    return [
        f"- Calibration (`nlp-transfer check`, on {scored_on}): expected calibration error {c['ece']:.4f}, "
        f"{c['ece_after_temperature']:.4f} after temperature {c['temperature']:.3f} fitted on {fitted_on} ({applied}).",
        *_top_label_card_lines(c),
        f"- Selective prediction: accuracy {s['accuracy_at_80']:.4f} on the 80 % most confident "
        f"{'label decisions (each label of each text)' if s.get('unit') == 'label decision' else 'inputs'}, "
        f"{s['accuracy_at_90']:.4f} on 90 %.",
        *card_lines(report),
    ]


def _top_label_card_lines(c: dict[str, Any]) -> list[str]:
    """The card line for a run whose scores go through a top-label isotonic map (none otherwise)."""
    if c.get("calibrator") != "isotonic":
        return []
    return [
        f"- Then the chosen label's score goes through the top-label isotonic map stored in `calibration.json` "
        f"(`numpy.interp(score, top_label_map['confidence'], top_label_map['calibrated'])`): expected calibration "
        f"error {c['ece_after_calibration']:.4f}. It changes no label."
    ]


def _reproducing_section(facts: _CardFacts) -> list[str]:
    """Where the config and the provenance of the run are, and how to train it again."""
    return [
        "## Reproducing",
        "",
        "`config.yaml` in this repository is the resolved training config; `run_info.json` records the data files "
        "(with sha256), library versions and the evaluation history. With the data files at the recorded paths, "
        f"`nlp-transfer {'adapt' if facts.task == 'masked-lm' else 'train'} config.yaml` trains the run again.",
        "",
    ]


_CARD_SECTIONS: tuple[Callable[[_CardFacts], list[str]], ...] = (
    _intro_section,
    _labels_section,
    _training_data_section,
    _training_procedure_section,
    _evaluation_section,
    _usage_section,
    _limitations_section,
    _reproducing_section,
)


def build_model_card(
    run_dir: str | Path,
    *,
    repo_id: str,
    license: str | None = None,
    adapter: bool = False,
) -> Any:
    """A ``huggingface_hub.ModelCard`` for the run: metadata (model-index with its metrics) and a body.

    ``license`` wins; otherwise the base model's license is used when its card is available offline.
    ``adapter`` describes a LoRA adapter repository instead of a full model.
    """
    from huggingface_hub import ModelCard

    facts = _card_facts(Path(run_dir), repo_id, license, adapter)
    data = _card_metadata(facts)
    lines = [line for section in _CARD_SECTIONS for line in section(facts)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def check_card_metadata(card: Any) -> None:
    """Validate the card's metadata offline: YAML round-trip, ModelCardData and model-index parsing."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    reloaded = ModelCard(str(card))
    meta = reloaded.data.to_dict()
    if "model-index" in meta:
        model_index_to_eval_results(meta["model-index"])
    for key in ("library_name", "pipeline_tag"):
        if not isinstance(meta.get(key), str):
            raise ValueError(f"model card metadata: {key} is missing")
