"""Predict and evaluate with a saved run directory: batched, length-sorted, any device."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from nlp_transfer.config import DataConfig
from nlp_transfer.data.labels import check_known_labels, map_integer_label_column
from nlp_transfer.data.loading import read_tagged_file, read_text_classification_file
from nlp_transfer.errors import DataError, UserError
from nlp_transfer.models import load_pretrained
from nlp_transfer.run_info import RunInfo
from nlp_transfer.tasks import Task
from nlp_transfer.tasks.classification import SequenceClassificationTask, count_truncated
from nlp_transfer.tasks.token_classification import TokenClassificationTask, split_words
from nlp_transfer.training.batches import LengthSortedBatches
from nlp_transfer.training.loop import logits_of
from nlp_transfer.transfer.feature_extraction import POOLING_KEY, MeanPooledModel
from nlp_transfer.transfer.peft_adapters import is_adapter_run, load_adapter_run


def load_run(
    run_dir: str | Path, *, trust_remote_code: bool = False, allow_pickle: bool = False, device: str | None = None
) -> tuple[PreTrainedModel, Task]:
    """The saved model (in eval mode) and a task rebuilt from its config and run info."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a saved model (no config.json). Give the output_dir of a finished run.")
    adapter_only = is_adapter_run(run_dir)  # a lora run saved with transfer.save_merged=false
    if not allow_pickle and not adapter_only and not any(run_dir.glob("*.safetensors")):
        raise UserError(
            f"{run_dir}: no safetensors weights. Pickle-based weights (.bin) can run code when loaded; "
            "pass --allow-pickle only if you trust where they came from."
        )
    config = AutoConfig.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    is_tagger = any(name.endswith("ForTokenClassification") for name in (config.architectures or []))
    auto = AutoModelForTokenClassification if is_tagger else AutoModelForSequenceClassification
    if adapter_only:
        model = load_adapter_run(run_dir, auto, trust_remote_code=trust_remote_code)
    else:
        model = load_pretrained(auto, str(run_dir), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if getattr(model.config, POOLING_KEY, "cls") == "mean":  # a feature-extraction run whose head reads the mean
        model = MeanPooledModel(model)
    tokenizer = AutoTokenizer.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    info = RunInfo.read(run_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = int(info.max_length or min(tokenizer.model_max_length, 512))
    task: Task
    if is_tagger:
        task = TokenClassificationTask(
            model_path=str(run_dir),
            labels=labels,
            tokenizer=tokenizer,
            max_length=max_length,
            document_context=int(info.document_context or 0),
            model_name=str(run_dir),
        )
    else:
        task = SequenceClassificationTask(
            model_path=str(run_dir),
            labels=labels,
            tokenizer=tokenizer,
            multi_label=model.config.problem_type == "multi_label_classification",
            max_length=max_length,
            threshold=float(info.threshold or 0.5),
            model_name=str(run_dir),
            temperature=read_temperature(run_dir),
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), task


#: written by ``nlp-transfer check`` into the run directory; ``load_run`` applies its temperature to single-label scores
CALIBRATION_FILE = "calibration.json"


def read_temperature(run_dir: Path) -> float:
    """The temperature ``nlp-transfer check`` fitted for this run (1.0 when it has not been checked)."""
    path = run_dir / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        temperature = float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a calibration file written by nlp-transfer check. Delete it, or rerun the check.") from None
    if not temperature > 0:
        raise UserError(f"{path}: temperature must be positive, got {temperature}. Delete the file, or rerun the check.")
    return temperature


def batched_logits(model: PreTrainedModel, task: Task, rows: dict[str, list[Any]], *, batch_size: int = 64) -> np.ndarray:
    """Logits for encoded ``rows`` (columns of lists), in row order; batches are formed by length.

    Token-level logits are padded to the longest row.
    """
    keys = [k for k in task.batch_columns if k in rows and k != "labels"]
    examples = [{k: rows[k][i] for k in keys} for i in range(len(rows["input_ids"]))]
    if not examples:
        return np.zeros((0, len(task.labels)), dtype=np.float32)
    model.eval()
    batches = LengthSortedBatches.build(examples, task.collator(), batch_size)
    logits, _ = batches.outputs(logits_of(model), device=model.device)
    return logits


def text_logits(
    model: PreTrainedModel, task: SequenceClassificationTask, texts: Sequence[str], *, batch_size: int = 64
) -> np.ndarray:
    """Sequence-classification logits for ``texts`` in their order."""
    encoded = task.tokenizer(list(texts), truncation=True, max_length=task.max_length)
    task.truncated["predict"] = count_truncated(encoded, texts, task.tokenizer, task.max_length)
    return batched_logits(model, task, dict(encoded), batch_size=batch_size)


def predict_texts(model: PreTrainedModel, task: Task, texts: Sequence[str], *, batch_size: int = 64) -> list[dict[str, Any]]:
    """Predictions for ``texts`` in their order.

    Classification: dicts of text, label, score and every label's score. NER: dicts of text and
    entities (text, type, start and end character offsets, score).
    """
    texts = list(texts)
    if not texts:
        return []
    if isinstance(task, TokenClassificationTask):
        words_and_spans = [split_words(text) for text in texts]
        rows = task.encode_words([words for words, _ in words_and_spans])
        logits = batched_logits(model, task, rows, batch_size=batch_size)
        return task.postprocess(logits, rows, texts, [spans for _, spans in words_and_spans])
    return task.postprocess(text_logits(model, task, texts, batch_size=batch_size), texts)


def predict(run_dir: str | Path, texts: Sequence[str], *, batch_size: int = 64, **load_kwargs: Any) -> list[dict[str, Any]]:
    """Load ``run_dir`` and predict ``texts`` (see :func:`predict_texts`)."""
    model, task = load_run(run_dir, **load_kwargs)
    return predict_texts(model, task, texts, batch_size=batch_size)


def evaluate_file(
    run_dir: str | Path, path: str, data: DataConfig, *, batch_size: int = 64, **load_kwargs: Any
) -> dict[str, Any]:
    """The run's metrics on a labelled file read with ``data``'s options."""
    model, task = load_run(run_dir, **load_kwargs)
    if isinstance(task, TokenClassificationTask):
        import datasets

        sentences = read_tagged_file(path, data).sentences
        known = set(task.labels)
        for sentence in sentences:
            unknown = [tag for tag in sentence.tags if tag not in known]
            if unknown:
                raise DataError(f"{path}:{sentence.line}: tag '{unknown[0]}' is not one of the model's tags {task.labels}.")
        dataset = task.preprocess(
            datasets.Dataset.from_dict(
                {
                    "tokens": [s.tokens for s in sentences],
                    "tags": [s.tags for s in sentences],
                    "document": [s.document for s in sentences],
                }
            )
        )
        rows = {name: list(dataset[name]) for name in dataset.column_names}
        logits = batched_logits(model, task, rows, batch_size=batch_size)
        width = logits.shape[1]
        labels = np.asarray([row + [-100] * (width - len(row)) for row in rows["labels"]])
        return task.compute_metrics(logits, labels, dataset)
    return task.compute_metrics(*labelled_file_logits(model, task, path, data, batch_size=batch_size))


def labelled_file_logits(
    model: PreTrainedModel, task: SequenceClassificationTask, path: str, data: DataConfig, *, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The logits and gold label ids of a labelled text file, its labels checked against the model's."""
    columns = read_text_classification_file(path, data, multi_label=task.multi_label)
    # integer labels that are not label names are label ids (SST-2's 0/1 for a run trained with data.labels)
    columns["label"] = map_integer_label_column(columns["label"], task.labels)
    check_known_labels(columns["label"], columns["line"], task.labels, path)
    return labelled_text_logits(model, task, columns["text"], columns["label"], batch_size=batch_size)


def labelled_text_logits(
    model: PreTrainedModel, task: SequenceClassificationTask, texts: Sequence[str], labels: Sequence[Any], *, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The logits of ``texts`` and their gold ``labels`` as ids (a 0/1 matrix for multi-label tasks)."""
    logits = text_logits(model, task, texts, batch_size=batch_size)
    if task.multi_label:
        return logits, np.asarray([task.multi_hot(names, task.label2id) for names in labels])
    return logits, np.asarray([task.label2id[name] for name in labels])


def read_texts(path: str, *, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Texts to predict: one per line for .txt, or a column of a csv/tsv/json/jsonl file."""
    from nlp_transfer.data.readers import infer_format, read_records, read_text

    if Path(path).suffix.lower() in (".txt", ""):
        return [line.strip() for line in read_text(path, encoding).splitlines() if line.strip()]
    records = read_records(path, format=infer_format(path, None), delimiter=None, header=True, encoding=encoding)
    if text_column not in records[0].fields:
        raise UserError(f"{path}: no column '{text_column}'; the columns are {list(records[0].fields)}. Pass --text-column.")
    return [str(r.fields[text_column]) for r in records]
