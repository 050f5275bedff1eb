"""Push a finished run to the Hugging Face Hub, with a generated model card.

``push_run`` uploads a run directory (the merged/plain model, or the LoRA adapter) as ONE commit;
``build_model_card`` writes its README.md from run_info.json, metrics.json and config.yaml.
The token comes from the argument, ``HF_TOKEN`` or the login cache (``huggingface_hub.get_token``);
it is never read from or written to a file of the run, and never printed.
The endpoint follows ``HF_ENDPOINT`` (read by huggingface_hub when it is imported).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from nlp_transfer.errors import UserError
from nlp_transfer.run_info import RUN_INFO_FILE, RunInfo

logger = logging.getLogger(__name__)

PushMode = Literal["auto", "merged", "adapter"]
T = TypeVar("T")

#: How often a commit is tried when the Hub answers 5xx/429 or the connection fails, and the first wait.
COMMIT_ATTEMPTS = 3
RETRY_WAIT_SECONDS = 2.0

REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
WEIGHT_PATTERNS = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_PATTERNS = (
    "tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt",
    "spiece.model", "sentencepiece*.model", "*.tiktoken", "chat_template*",
)  # fmt: skip
RUN_FILES = ("config.yaml", "metrics.json", "run_info.json", "confusion_matrix_*.png", "calibration.json")
#: Never uploaded: training state, pickles, editor/OS clutter, a README we replace with the card.
EXCLUDED_PATTERNS = (
    "optimizer*", "scheduler*", "rng_state*", "training_args*", "trainer_state*", "*.pt", "*.pth",
    "*.bin", "*.ckpt", "*.pkl", "*.pickle", ".*", "*~", "README.md",
)  # fmt: skip
#: Files of an earlier push that would confuse loading when left beside the new ones (e.g. an old adapter).
STALE_PATTERNS = ("adapter_config.json", "adapter_model.*", "*.safetensors", "*.safetensors.index.json", "*.bin")
SECRET_KEY_RE = re.compile(r"(^|_)(token|secret|password|passwd|api_?key|credentials?)$", re.IGNORECASE)
HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")

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


class PushError(UserError):
    """The Hub refused or failed the push; the message says why and what to do."""


# --------------------------------------------------------------------------- reading a run


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err}).") from None
    return data if isinstance(data, dict) else {}


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(any(folder.glob(p)) for p in WEIGHT_PATTERNS)


def _has_adapter(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ADAPTER_FILES)


def resolve_mode(run_dir: Path, mode: str) -> Literal["merged", "adapter"]:
    """Which model the push uploads: ``auto`` takes the plain/merged model, else the adapter."""
    if mode not in ("auto", "merged", "adapter"):
        raise UserError(f"push mode {mode!r}: use auto, merged or adapter.")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory. Give the output_dir of a finished run.")
    adapter_dir = run_dir / "adapter"
    if mode == "adapter":
        if not _has_adapter(adapter_dir):
            raise UserError(
                f"{run_dir}: no LoRA adapter to push ({adapter_dir} with {' and '.join(ADAPTER_FILES)} is missing). "
                "--adapter needs a run trained with strategy=lora; push the model with --merged."
            )
        return "adapter"
    if _has_model(run_dir):
        return "merged"
    if _has_adapter(adapter_dir):
        if mode == "auto":
            return "adapter"
        raise UserError(f"{run_dir}: no merged model (transfer.save_merged was false); push the adapter with --adapter.")
    raise UserError(
        f"{run_dir}: nothing to push: no config.json with model weights (model.safetensors). "
        "Give the output_dir of a finished run (nlp-transfer train writes them at the end)."
    )


def _sanitized_config_yaml(path: Path) -> bytes | None:
    """config.yaml without any secret-looking key or token-looking value."""
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return None

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if not SECRET_KEY_RE.search(str(k))}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, str) and HF_TOKEN_RE.search(node):
            return "<redacted>"
        return node

    return yaml.safe_dump(clean(data), sort_keys=False).encode("utf-8")


def _adapter_config_for_hub(path: Path, base_model: str | None) -> bytes:
    """adapter_config.json with ``base_model_name_or_path`` set to the Hub id when it names a local copy."""
    config = _read_json(path)
    recorded = str(config.get("base_model_name_or_path") or "")
    local = recorded.startswith(("/", ".", "~")) or Path(recorded).is_dir()
    if base_model and local and _looks_like_hub_id(base_model):
        config["base_model_name_or_path"] = base_model
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _run_info_for_hub(path: Path) -> bytes:
    """run_info.json with local data paths cut to file names (their size and sha256 still identify them)."""
    info = _read_json(path)
    for entry in (info.get("data_files") or {}).values():
        if isinstance(entry, dict) and "path" in entry:
            entry["path"] = Path(str(entry["path"])).name
    return (json.dumps(info, indent=2) + "\n").encode("utf-8")


def _looks_like_hub_id(name: str) -> bool:
    return bool(REPO_ID_RE.fullmatch(name)) and not Path(name).expanduser().exists()


def collect_files(run_dir: Path, mode: Literal["merged", "adapter"], base_model: str | None = None) -> dict[str, Path | bytes]:
    """Path in the repo -> local file or bytes, for everything the push uploads (the card excluded)."""
    files: dict[str, Path | bytes] = {}
    top = sorted(p for p in run_dir.iterdir() if p.is_file() and not _matches(p.name, EXCLUDED_PATTERNS))
    for path in top:
        keep = _matches(path.name, RUN_FILES + TOKENIZER_PATTERNS)
        if mode == "merged":
            keep = keep or path.name == "config.json" or path.name == "generation_config.json"
            keep = keep or _matches(path.name, WEIGHT_PATTERNS)
        if keep:
            files[path.name] = path
    if mode == "adapter":
        adapter_dir = run_dir / "adapter"
        for path in sorted(adapter_dir.iterdir()):
            if path.is_file() and not _matches(path.name, EXCLUDED_PATTERNS):
                if path.name == "config.json":  # a full config beside an adapter misleads from_pretrained
                    continue
                files[path.name] = path
        files["adapter_config.json"] = _adapter_config_for_hub(adapter_dir / "adapter_config.json", base_model)
    if "run_info.json" in files:
        files["run_info.json"] = _run_info_for_hub(run_dir / "run_info.json")
    if "config.yaml" in files:
        cleaned = _sanitized_config_yaml(run_dir / "config.yaml")
        if cleaned is None:
            del files["config.yaml"]
        else:
            files["config.yaml"] = cleaned
    return files


# --------------------------------------------------------------------------- model card


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


def _read_run_info(run_dir: Path) -> RunInfo:
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
            path = Path(str(value["path"]))
            folder = path.parent.name or path.stem
            entries.append((split, folder, path.name))
    return entries


def _scalar_metrics(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}


def _eval_results(info: RunInfo, metrics: dict[str, Any], pipeline_tag: str) -> list[Any]:
    """The model-index entries (``huggingface_hub.EvalResult``) of the metrics the Hub knows by name."""
    from huggingface_hub import EvalResult

    datasets = {split: (ds_id, name) for split, ds_id, name in _dataset_entries(info)}
    fallback = datasets.get("train", ("custom", "custom data"))
    results = []
    for split, values in metrics.items():
        if not isinstance(values, dict):
            continue
        ds_id, name = datasets.get(split, fallback)
        if split == "validation" and "validation" not in datasets:
            name = f"{name} (held-out part)"
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


def _hyperparameters(config: dict[str, Any], task: str | None = None) -> list[tuple[str, Any]]:
    """(name, value) rows of the training settings, the transfer section and the seed of the resolved config."""
    training = config.get("training") or {}
    keys = (
        "epochs", "batch_size", "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm",
        "gradient_accumulation_steps", "max_length", "mixed_precision", "class_weights", "metric_for_best_model",
        "early_stopping_patience", "threshold",
    )  # fmt: skip
    if config.get("task") == "ner":
        keys += ("label_all_subwords", "document_context")
    rows = [(f"training.{k}", training[k]) for k in keys if k in training]
    if (task or config.get("task")) != "masked-lm":  # nlp-transfer adapt ignores the transfer section
        rows += [(f"transfer.{k}", v) for k, v in (config.get("transfer") or {}).items()]
    if "seed" in config:
        rows.append(("seed", config["seed"]))
    return rows


def _adapter_usage(repo_id: str, info: RunInfo, pipeline_tag: str) -> str:
    """How to load a LoRA adapter repository on its base model with ``peft``."""
    labels = [str(label) for label in info.labels or []]
    base = str(info.base_model or "BASE_MODEL")
    auto = "AutoModelForTokenClassification" if pipeline_tag == "token-classification" else "AutoModelForSequenceClassification"
    id2label = {i: label for i, label in enumerate(labels)}
    return (
        "This repository holds a LoRA adapter; load it on its base model with `peft`:\n\n"
        "```python\n"
        "from peft import PeftModel\n"
        f"from transformers import {auto}, AutoTokenizer, pipeline\n\n"
        f"id2label = {_q(id2label)}\n"
        f"base = {auto}.from_pretrained(\n"
        f"    {_q(base)}, num_labels={len(labels)}, id2label=id2label, label2id={{v: k for k, v in id2label.items()}}\n"
        ")\n"
        f"model = PeftModel.from_pretrained(base, {_q(repo_id)}).merge_and_unload()\n"
        f"tokenizer = AutoTokenizer.from_pretrained({_q(repo_id)})\n"
        f"classifier = pipeline({_q(pipeline_tag)}, model=model, tokenizer=tokenizer)\n"
        "```\n"
    )


def _model_usage(repo_id: str, info: RunInfo, pipeline_tag: str) -> str:
    """How to run a full-model repository with a ``transformers`` pipeline, or with nlp-transfer."""
    extra = ', top_k=None, function_to_apply="sigmoid"' if info.task == "multilabel" else ""
    if pipeline_tag == "token-classification":
        extra = ', aggregation_strategy="first"'
    example = (
        "Hugging Face released a new library in Paris."
        if pipeline_tag == "token-classification"
        else "The room was spotless and the staff were lovely."
    )
    return (
        "With `transformers` alone:\n\n"
        "```python\n"
        "from transformers import pipeline\n\n"
        f"classifier = pipeline({_q(pipeline_tag)}, model={_q(repo_id)}{extra})\n"
        f"classifier({_q(example)})\n"
        "```\n\n"
        "With nlp-transfer (downloads the repository first):\n\n"
        "```python\n"
        "from huggingface_hub import snapshot_download\n"
        "from nlp_transfer import predict\n\n"
        f"predict(snapshot_download({_q(repo_id)}), [{_q(example)}])\n"
        "```\n"
    )


#: how each architecture's sequence-classification head reads one vector per text (``mean``: the pooled states)
MEAN_HEADS = {
    "distilbert": "model.classifier(torch.relu(model.pre_classifier(mean)))",
    "roberta": "model.classifier(mean[:, None])",
    "xlm-roberta": "model.classifier(mean[:, None])",
    "electra": "model.classifier(mean[:, None])",
    "deberta-v2": "model.classifier(model.pooler(mean[:, None]))",
    "deberta": "model.classifier(model.pooler(mean[:, None]))",
}
BERT_MEAN_HEAD = "model.classifier(model.base_model.pooler(mean[:, None]))"


def _mean_pooled_usage(repo_id: str, info: RunInfo, model_type: str) -> str:
    """How to run a model whose head reads the mean of the token states, with ``transformers`` and ``torch`` alone."""
    head = MEAN_HEADS.get(model_type, BERT_MEAN_HEAD)
    if info.task == "multilabel":
        decide = f"    scores = logits.sigmoid()\n    return [[model.config.id2label[j] for j, s in enumerate(row) if s >= {info.threshold or 0.5}] for row in scores.tolist()]\n"
    else:
        decide = "    return [model.config.id2label[i] for i in logits.argmax(-1).tolist()]\n"
    return (
        "The classifier reads the **mean of the token states** (not the first token, which `pipeline` would give it). "
        "With `transformers` and `torch` alone:\n\n"
        "```python\n"
        "import torch\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
        f"tokenizer = AutoTokenizer.from_pretrained({_q(repo_id)})\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({_q(repo_id)}).eval()\n\n\n"
        "@torch.no_grad()\n"
        "def classify(texts):\n"
        f'    batch = tokenizer(texts, padding=True, truncation=True, max_length={info.max_length or 256}, return_tensors="pt")\n'
        "    states = model.base_model(**batch).last_hidden_state\n"
        '    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)\n'
        "    mean = (states * mask).sum(1) / mask.sum(1)\n"
        f"    logits = {head}\n"
        f"{decide}\n\n"
        'print(classify(["The room was spotless and the staff were lovely."]))\n'
        "```\n"
    )


def _adapted_usage(repo_id: str) -> str:
    """How to use an encoder that ``nlp-transfer adapt`` further pretrained: fill masks, or fine-tune it."""
    return (
        "An encoder for fine-tuning, not a classifier. Its masked-LM head fills masks:\n\n"
        "```python\n"
        "from transformers import pipeline\n\n"
        f'fill = pipeline("fill-mask", model={_q(repo_id)})\n'
        'fill("The blender was [MASK] and easy to clean.")\n'
        "```\n\n"
        f"Fine-tune it as any model: `AutoModelForSequenceClassification.from_pretrained({_q(repo_id)}, num_labels=N)`, "
        f"or `model: {repo_id}` in an nlp-transfer config.\n"
    )


def _usage(repo_id: str, info: RunInfo, pipeline_tag: str, adapter: bool, model_type: str = "bert") -> str:
    """The card's code snippets: the adapter's, a mean-pooled model's, an adapted encoder's, or the full model's."""
    if info.task == "masked-lm":
        return _adapted_usage(repo_id)
    if adapter:
        return _adapter_usage(repo_id, info, pipeline_tag)
    if info.pooling == "mean":
        return _mean_pooled_usage(repo_id, info, model_type)
    return _model_usage(repo_id, info, pipeline_tag)


def _q(value: Any) -> str:
    """A Python literal with double quotes, for the code snippets of the card."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else repr(value)


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
    info = _read_run_info(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    config_path = run_dir / "config.yaml"
    config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}) if config_path.is_file() else {}
    task = str(info.task or config.get("task") or "classification")
    base_model = info.base_model or config.get("model")
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
        base_model=base_model,
        base_is_hub=bool(base_model) and _looks_like_hub_id(str(base_model)),
        license=license or _base_model_license(base_model),
    )


def _card_metadata(facts: _CardFacts) -> Any:
    """The card's YAML metadata (``ModelCardData``), with the model-index of its metrics."""
    from huggingface_hub import ModelCardData

    datasets = sorted({name for _, _, name in _dataset_entries(facts.info)})
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
    """A table of the splits: their data file or dataset and their number of examples."""
    lines = ["## Training data", "", "| split | data | examples |", "|---|---|---|"]
    examples = facts.info.examples or {}
    entries = {split: name for split, _, name in _dataset_entries(facts.info)}
    order = {"train": 0, "validation": 1, "test": 2}
    for split in sorted(set(examples) | set(entries), key=lambda s: (order.get(s, 3), s)):
        lines.append(f"| {split} | {_fmt(entries.get(split, 'held out from train'))} | {_fmt(examples.get(split, ''))} |")
    lines.append("")
    return lines


def _training_procedure_section(facts: _CardFacts) -> list[str]:
    """The share of parameters trained, the hyperparameters, and the steps and time the run took."""
    info = facts.info
    lines = ["## Training procedure", ""]
    trainable, total = info.trainable_parameters, info.total_parameters
    if trainable and total:
        share = 100 * trainable / total
        lines += [f"Strategy `{facts.strategy}`: {trainable:,} of {total:,} parameters trained ({share:.2f} %).", ""]
    hyper = _hyperparameters(facts.config, facts.task)
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
    model_type = str(_read_json(facts.run_dir / "config.json").get("model_type", "bert"))
    return ["## How to use", "", _usage(facts.repo_id, facts.info, facts.pipeline_tag, facts.adapter, model_type)]


def _limitations_section(facts: _CardFacts) -> list[str]:
    """What the model cannot be expected to do, and what ``nlp-transfer check`` measured if the run was checked."""
    max_length = "the maximum length" if facts.info.max_length is None else facts.info.max_length
    long_text = f"- Inputs longer than {max_length} tokens were truncated in training."
    if (facts.config.get("training") or {}).get("long_text") == "windows":
        long_text = (
            f"- Inputs longer than {max_length} tokens were read as overlapping windows whose scores are pooled "
            "(`training.long_text: windows`); `transformers.pipeline` truncates them instead."
        )
    return [
        "## Bias, risks and limitations",
        "",
        "- The model only knows the labels above, and inherits the language coverage and the biases of its base "
        "model and of the training data.",
        "- The metrics come from the evaluation data listed above; expect lower scores on text from other domains.",
        long_text,
        *_checked_figures(facts.run_dir),
        "",
    ]


def _checked_figures(run_dir: Path) -> list[str]:
    """Card lines with the figures of ``RUN_DIR/check/check.json``, if any: calibration, behaviour, bias, slices."""
    from nlp_transfer.check.report_md import card_lines

    report = _read_json(run_dir / "check" / "check.json")
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
    return [
        f"- Calibration (`nlp-transfer check`, on {report['scored_on']}): expected calibration error {c['ece']:.4f}, "
        f"{c['ece_after_temperature']:.4f} after temperature {c['temperature']:.3f} fitted on {report['fitted_on']} ({applied}).",
        *_top_label_card_lines(c),
        f"- Selective prediction: accuracy {s['accuracy_at_80']:.4f} on the 80 % most confident inputs, "
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
        "`nlp-transfer train config.yaml` trains the run again.",
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


# --------------------------------------------------------------------------- pushing


def resolve_token(token: str | None = None) -> str:
    """The explicit token, else ``HF_TOKEN``, else the login cache; a UserError when there is none."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise UserError(
            "no Hugging Face token: set the HF_TOKEN environment variable, run `hf auth login`, or pass --token. "
            "The token needs write access to the target namespace."
        )
    return found


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(err: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return False
    status = _status(err)
    if status is not None:
        return status >= 500 or status == 429
    transport: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:
        import httpx2

        transport += (httpx2.TransportError,)
    except ImportError:
        pass
    return isinstance(err, transport)


def _explain(err: BaseException, repo_id: str, step: str) -> PushError:
    """A clear message for a failed Hub call (never containing the token)."""
    status = _status(err)
    if status == 401:
        return PushError(
            f"the Hugging Face token was refused (401 while {step}). Check HF_TOKEN / --token, or log in again "
            "with `hf auth login`."
        )
    if status == 403:
        namespace = repo_id.split("/")[0]
        return PushError(
            f"no write access to '{namespace}' (403 while {step}): the token's user cannot create or write "
            f"{repo_id}. Use your own user name or an organization you can write to, and a token with write access."
        )
    if status is not None:
        return PushError(f"the Hub answered {status} while {step} for {repo_id}: {str(err).splitlines()[0][:300]}")
    return PushError(f"could not reach the Hub while {step} for {repo_id} ({type(err).__name__}). Check the network.")


def _with_retries(action: Callable[[], T], *, attempts: int, wait: float, what: str) -> T:
    """Run ``action``, retrying transient Hub errors (5xx, 429, connection) with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as err:
            if attempt == attempts or not _is_transient(err):
                raise
            delay = wait * 2 ** (attempt - 1)
            logger.warning("%s failed (%s); retrying in %.0f s (%d/%d)", what, type(err).__name__, delay, attempt, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _refuse_leaks(files: dict[str, Path | bytes], token: str) -> None:
    """Stop when a file about to be uploaded contains the token (read in chunks: weights can be large)."""
    raw = token.encode()
    for path_in_repo, source in files.items():
        if isinstance(source, bytes):
            found = raw in source
        else:
            found, tail = False, b""
            with source.open("rb") as handle:
                while not found and (chunk := handle.read(8 << 20)):
                    found = raw in tail + chunk
                    tail = chunk[-(len(raw) - 1) :] if len(raw) > 1 else b""
        if found:
            raise UserError(f"{path_in_repo} contains the Hugging Face token; refusing to upload it. Remove the token from it.")


def _card_bytes(run_dir: Path, repo_id: str, license: str | None, adapter: bool) -> bytes:
    """The run's model card as README.md, its metadata checked offline."""
    card = build_model_card(run_dir, repo_id=repo_id, license=license, adapter=adapter)
    check_card_metadata(card)
    return str(card).encode("utf-8")


def _prepare_push(
    run_dir: Path, repo_id: str, mode: PushMode, license: str | None
) -> tuple[Literal["merged", "adapter"], dict[str, Path | bytes]]:
    """Check the repo id, choose what to upload and gather the files with their card: all before any request."""
    if not REPO_ID_RE.fullmatch(repo_id or ""):
        raise UserError(f"repo id {repo_id!r}: write it as OWNER/NAME, e.g. your-user/sentiment-minilm.")
    chosen = resolve_mode(run_dir, mode)
    info = _read_run_info(run_dir)
    files = collect_files(run_dir, chosen, base_model=info.base_model or None)
    files["README.md"] = _card_bytes(run_dir, repo_id, license, chosen == "adapter")
    return chosen, files


def _check_online() -> None:
    """A UserError when huggingface_hub is in offline mode."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise UserError("HF_HUB_OFFLINE is set: pushing needs the Hub. Unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) to push.")


class _HubCaller:
    """Runs one Hub call of a push: transient errors are retried, a failure becomes a :class:`PushError`."""

    def __init__(self, repo_id: str, attempts: int, wait: float) -> None:
        self.repo_id, self.attempts, self.wait = repo_id, attempts, wait

    def __call__(self, step: str, action: Callable[[], T]) -> T:
        """The result of ``action``; ``step`` names it in log lines and error messages."""
        try:
            return _with_retries(action, attempts=self.attempts, wait=self.wait, what=step)
        except UserError:
            raise
        except Exception as err:
            if _status(err) is None and not _is_transient(err):
                raise
            raise _explain(err, self.repo_id, step) from None


def _update_for_existing_repo(
    api: Any, hub_call: _HubCaller, run_dir: Path, files: dict[str, Path | bytes], license: str | None, adapter: bool
) -> list[str]:
    """For a repository that exists: keep its card's license (when none was given) and list the stale files to delete."""
    repo_id = hub_call.repo_id
    remote = hub_call("listing the repository", lambda: api.list_repo_files(repo_id))
    kept = None if license or "README.md" not in remote else _remote_license(api, repo_id)
    if kept:  # a push without --license keeps the license the repository's card already states
        files["README.md"] = _card_bytes(run_dir, repo_id, kept, adapter)
    return [p for p in remote if p not in files and "/" not in p and _matches(p, STALE_PATTERNS)]


def _commit_files(
    api: Any, hub_call: _HubCaller, files: dict[str, Path | bytes], stale: list[str], message: str, *, existed: bool
) -> None:
    """Upload ``files`` and delete ``stale`` in one commit; a failed push to a new repository deletes it again."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id = hub_call.repo_id

    def commit() -> Any:
        operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=s) for p, s in files.items()]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        return api.create_commit(repo_id, operations=operations, commit_message=message)

    try:
        hub_call("committing the files", commit)
    except PushError:
        if not existed:  # leave no empty repository behind
            try:
                api.delete_repo(repo_id, missing_ok=True)
            except Exception as err:
                logger.warning("could not delete the empty repository %s (%s)", repo_id, type(err).__name__)
        raise


def push_run(
    run_dir: str | Path,
    *,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    mode: PushMode = "auto",
    commit_message: str | None = None,
    license: str | None = None,
    attempts: int = COMMIT_ATTEMPTS,
    retry_wait: float | None = None,
    onnx: bool = False,
) -> str:
    """Create ``repo_id`` (or reuse it) and upload the run in one commit; returns the repository URL.

    ``mode``: ``merged`` the plain (or LoRA-merged) model, ``adapter`` the LoRA adapter in RUN_DIR/adapter,
    ``auto`` the model when there is one, else the adapter. Checkpoints, logs and training state stay local.
    Transient errors of the commit are retried ``attempts`` times, waiting ``retry_wait`` (default
    ``RETRY_WAIT_SECONDS``) seconds, doubled each time. ``onnx`` also uploads RUN_DIR/onnx (``nlp-transfer export``).
    """
    run_dir = Path(run_dir)
    retry_wait = RETRY_WAIT_SECONDS if retry_wait is None else retry_wait
    chosen, files = _prepare_push(run_dir, repo_id, mode, license)
    onnx_card = b""
    if onnx:  # the export rides along, and the card says how to run it with onnxruntime alone
        from nlp_transfer.export.hub_files import onnx_card_section, onnx_push_files

        files.update(onnx_push_files(run_dir))
        onnx_card = onnx_card_section(run_dir, repo_id).encode("utf-8")
    token = resolve_token(token)
    _refuse_leaks(files, token)
    _check_online()

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    hub_call = _HubCaller(repo_id, attempts, retry_wait)
    hub_call("checking the token", api.whoami)
    existed = hub_call("looking up the repository", lambda: api.repo_exists(repo_id))
    url = str(hub_call("creating the repository", lambda: api.create_repo(repo_id, private=private, exist_ok=True)))
    stale = _update_for_existing_repo(api, hub_call, run_dir, files, license, chosen == "adapter") if existed else []
    if onnx_card:  # appended once the card is final (an existing repository's license may have rebuilt it)
        files["README.md"] = bytes(files["README.md"]) + onnx_card  # type: ignore[arg-type]
    message = commit_message or f"Upload {chosen} model from nlp-transfer run {run_dir.name}"
    _commit_files(api, hub_call, files, stale, message, existed=existed)
    logger.info("pushed %s (%s) to %s", run_dir, chosen, url)
    return url


def _remote_license(api: Any, repo_id: str) -> str | None:
    """The license in the metadata of the repository's current README.md, or None when it cannot be read."""
    from huggingface_hub.repocard import metadata_load

    try:
        path = api.hf_hub_download(repo_id, "README.md")
        value = (metadata_load(path) or {}).get("license")
    except Exception as err:  # an unreadable card must not stop the push; the new card says no license was set
        logger.warning("could not read the license of %s's current model card (%s)", repo_id, type(err).__name__)
        return None
    return str(value) if value else None


def push_configured_run(hub: Any, output_dir: str | Path) -> str:
    """Push a just-finished run as its config's ``hub`` section says (``run_training`` calls this)."""
    try:
        return push_run(output_dir, repo_id=hub.repo_id, private=hub.private, mode=hub.mode, license=hub.license)
    except UserError as err:
        raise type(err)(
            f"{err} The run itself is saved in {output_dir}; push it later with "
            f"`nlp-transfer push {output_dir} --repo-id {hub.repo_id}`."
        ) from None
