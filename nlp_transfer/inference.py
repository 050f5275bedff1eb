"""Predict and evaluate with a saved run directory: batched, length-sorted, any device."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from nlp_transfer.config import DataConfig
from nlp_transfer.data.labels import check_known_labels
from nlp_transfer.data.loading import read_text_classification_file
from nlp_transfer.errors import UserError
from nlp_transfer.pipeline import RUN_INFO_FILE
from nlp_transfer.tasks.classification import SequenceClassificationTask, count_truncated


def load_run(
    run_dir: str | Path, *, trust_remote_code: bool = False, allow_pickle: bool = False, device: str | None = None
) -> tuple[PreTrainedModel, SequenceClassificationTask]:
    """The saved model (in eval mode) and a task rebuilt from its config and run info."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a saved model (no config.json). Give the output_dir of a finished run.")
    if not allow_pickle and not any(run_dir.glob("*.safetensors")):
        raise UserError(
            f"{run_dir}: no safetensors weights. Pickle-based weights (.bin) can run code when loaded; "
            "pass --allow-pickle only if you trust where they came from."
        )
    model = AutoModelForSequenceClassification.from_pretrained(
        run_dir, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True
    )
    tokenizer = AutoTokenizer.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    info = json.loads((run_dir / RUN_INFO_FILE).read_text(encoding="utf-8")) if (run_dir / RUN_INFO_FILE).is_file() else {}
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    task = SequenceClassificationTask(
        model_path=str(run_dir),
        labels=labels,
        tokenizer=tokenizer,
        multi_label=model.config.problem_type == "multi_label_classification",
        max_length=int(info.get("max_length") or min(tokenizer.model_max_length, 512)),
        threshold=float(info.get("threshold") or 0.5),
        model_name=str(run_dir),
    )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), task


@torch.inference_mode()
def text_logits(
    model: PreTrainedModel, task: SequenceClassificationTask, texts: Sequence[str], *, batch_size: int = 64
) -> np.ndarray:
    """Logits for ``texts`` in their order; batches are formed by length to avoid padding."""
    texts = list(texts)
    logits = np.zeros((len(texts), len(task.labels)), dtype=np.float32)
    if not texts:
        return logits
    encoded = task.tokenizer(texts, truncation=True, max_length=task.max_length)
    task.truncated["predict"] = count_truncated(encoded, texts, task.tokenizer, task.max_length)
    order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
    collate = task.collator()
    keys = list(encoded.keys())
    for start in range(0, len(texts), batch_size):
        index = order[start : start + batch_size]
        batch = collate([{k: encoded[k][i] for k in keys} for i in index])
        logits[index] = model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().cpu().numpy()
    return logits


def predict_texts(
    model: PreTrainedModel, task: SequenceClassificationTask, texts: Sequence[str], *, batch_size: int = 64
) -> list[dict[str, Any]]:
    """Predictions for ``texts`` in their order: dicts of text, label, score and every label's score."""
    return task.postprocess(text_logits(model, task, texts, batch_size=batch_size), list(texts))


def predict(run_dir: str | Path, texts: Sequence[str], *, batch_size: int = 64, **load_kwargs: Any) -> list[dict[str, Any]]:
    """Load ``run_dir`` and predict ``texts``: dicts of text, label, score and every label's score."""
    model, task = load_run(run_dir, **load_kwargs)
    return predict_texts(model, task, texts, batch_size=batch_size)


def evaluate_file(
    run_dir: str | Path, path: str, data: DataConfig, *, batch_size: int = 64, **load_kwargs: Any
) -> dict[str, Any]:
    """The run's metrics on a labelled file read with ``data``'s options."""
    model, task = load_run(run_dir, **load_kwargs)
    columns = read_text_classification_file(path, data, multi_label=task.multi_label)
    check_known_labels(columns["label"], columns["line"], task.labels, path)
    logits = text_logits(model, task, columns["text"], batch_size=batch_size)
    if task.multi_label:
        references = np.asarray([task.multi_hot(labels, task.label2id) for labels in columns["label"]])
    else:
        references = np.asarray([task.label2id[label] for label in columns["label"]])
    return task.compute_metrics(logits, references)


def read_texts(path: str, *, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Texts to predict: one per line for .txt, or a column of a csv/tsv/json/jsonl file."""
    from nlp_transfer.data.readers import infer_format, read_records, read_text

    if Path(path).suffix.lower() in (".txt", ""):
        return [line.strip() for line in read_text(path, encoding).splitlines() if line.strip()]
    records = read_records(path, format=infer_format(path, None), delimiter=None, header=True, encoding=encoding)
    if text_column not in records[0].fields:
        raise UserError(f"{path}: no column '{text_column}'; the columns are {list(records[0].fields)}. Pass --text-column.")
    return [str(r.fields[text_column]) for r in records]
