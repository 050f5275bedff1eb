"""Predict and evaluate with a saved run directory: batched, length-sorted, any device."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from nlp_transfer.config import DataConfig
from nlp_transfer.data.labels import check_known_labels, map_integer_label_column
from nlp_transfer.data.loading import read_tagged_file, read_text_classification_file
from nlp_transfer.errors import DataError, UserError
from nlp_transfer.models import load_pretrained, read_model_config
from nlp_transfer.run_info import RunInfo
from nlp_transfer.tasks import Task
from nlp_transfer.tasks.classification import SequenceClassificationTask
from nlp_transfer.tasks.token_classification import TokenClassificationTask, split_words
from nlp_transfer.tasks.windows import CONFIG_KEY, WindowSettings
from nlp_transfer.training.batches import LengthSortedBatches, inference_token_budget
from nlp_transfer.training.first_position import first_position_only
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
    has_safetensors = any(run_dir.glob("*.safetensors"))
    if not adapter_only and not has_safetensors and not any(run_dir.glob("*.bin")):
        raise UserError(f"{run_dir}: no model weights (no model.safetensors); the run is incomplete. Train it again.")
    if not allow_pickle and not adapter_only and not has_safetensors:
        raise UserError(
            f"{run_dir}: no safetensors weights. Pickle-based weights (.bin) can run code when loaded; "
            "pass --allow-pickle only if you trust where they came from."
        )
    config = read_model_config(run_dir, trust_remote_code=trust_remote_code)
    is_tagger = any(name.endswith("ForTokenClassification") for name in (config.architectures or []))
    auto = AutoModelForTokenClassification if is_tagger else AutoModelForSequenceClassification
    if adapter_only:
        model = load_adapter_run(run_dir, auto, trust_remote_code=trust_remote_code)
    else:
        model = load_pretrained(auto, str(run_dir), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if getattr(model.config, POOLING_KEY, "cls") == "mean":  # a feature-extraction run whose head reads the mean
        model = MeanPooledModel(model)
    task = run_task(run_dir, model.config, trust_remote_code=trust_remote_code)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), task


def run_task(run_dir: str | Path, config: Any, *, trust_remote_code: bool = False) -> Task:
    """The task of a saved run, rebuilt from its model ``config`` (labels, head), tokenizer and run info."""
    run_dir = Path(run_dir)
    is_tagger = any(name.endswith("ForTokenClassification") for name in (config.architectures or []))
    tokenizer = AutoTokenizer.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    info = RunInfo.read(run_dir)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    max_length = int(info.max_length or min(tokenizer.model_max_length, 512))
    if is_tagger:
        return TokenClassificationTask(
            model_path=str(run_dir),
            labels=labels,
            tokenizer=tokenizer,
            max_length=max_length,
            document_context=int(info.document_context or 0),
            model_name=str(run_dir),
        )
    temperature, top_label_map = read_calibration(run_dir)
    return SequenceClassificationTask(
        model_path=str(run_dir),
        labels=labels,
        tokenizer=tokenizer,
        multi_label=config.problem_type == "multi_label_classification",
        max_length=max_length,
        threshold=float(info.threshold or 0.5),
        model_name=str(run_dir),
        temperature=temperature,
        top_label_map=top_label_map,
        windows=WindowSettings.from_config(getattr(config, CONFIG_KEY, None)),
    )


#: the ways ``predict`` can run a saved run: its PyTorch weights, or its ONNX export (``nlp-transfer export``)
BACKENDS = ("torch", "onnx")


def load_backend(
    run_dir: str | Path, backend: str = "torch", *, export_dir: str | Path | None = None, **load_kwargs: Any
) -> tuple[Any, Task]:
    """The run's model and task for ``backend``: :func:`load_run`, or the ONNX export run by onnxruntime.

    Both give a model that :func:`predict_texts` and :func:`batched_logits` accept, so predictions are built
    (labels, temperature, entities) by the same task code whichever backend computes the logits.
    """
    if backend == "torch":
        return load_run(run_dir, **load_kwargs)
    if backend == "onnx":
        from nlp_transfer.export.onnx_backend import load_onnx_run

        return load_onnx_run(run_dir, export_dir=export_dir, trust_remote_code=load_kwargs.get("trust_remote_code", False))
    raise UserError(f"backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}.")


#: written by ``nlp-transfer check`` into the run directory; ``load_run`` applies its temperature to single-label scores
CALIBRATION_FILE = "calibration.json"


def read_calibration(run_dir: Path) -> tuple[float, dict[str, list[float]] | None]:
    """The temperature and top-label map ``nlp-transfer check`` stored for this run, read once.

    ``(1.0, None)`` when the run has not been checked; the map is None unless ``--calibrator isotonic`` (or ``auto``
    choosing it) stored one. A malformed file is a UserError naming it.
    """
    path = run_dir / CALIBRATION_FILE
    if not path.is_file():
        return 1.0, None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        temperature = float(stored["temperature"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a calibration file written by nlp-transfer check. Delete it, or rerun the check.") from None
    if not temperature > 0:
        raise UserError(f"{path}: temperature must be positive, got {temperature}. Delete the file, or rerun the check.")
    points = stored.get("top_label_map")
    return temperature, None if points is None else _checked_top_label_map(path, points)


def read_temperature(run_dir: Path) -> float:
    """The temperature ``nlp-transfer check`` fitted for this run (1.0 when it has not been checked)."""
    return read_calibration(run_dir)[0]


def _checked_top_label_map(path: Path, points: Any) -> dict[str, list[float]]:
    """``points`` as two equally long, non-decreasing lists in [0, 1]; a UserError naming ``path`` otherwise."""
    try:
        x, y = np.asarray(points["confidence"], dtype=np.float64), np.asarray(points["calibrated"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        x = y = np.zeros(0)
    ordered = x.size >= 1 and x.shape == y.shape and np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
    if not ordered or not np.all((x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)):
        raise UserError(
            f"{path}: top_label_map must hold equally long, non-decreasing lists 'confidence' and 'calibrated' in [0, 1]. "
            "Delete the file, or rerun the check."
        )
    return {"confidence": x.tolist(), "calibrated": y.tolist()}


def batched_logits(
    model: PreTrainedModel,
    task: Task,
    rows: dict[str, list[Any]],
    *,
    batch_size: int = 64,
    first_position: bool = True,
    max_batch_tokens: int | str | None = "auto",
) -> np.ndarray:
    """Logits for encoded ``rows`` (columns of lists), in row order; batches are formed by length.

    Token-level logits are padded to the longest row. ``first_position``: a sequence classifier's last layer
    computes only the position its head reads (the same logits, less work; false computes every position).
    ``max_batch_tokens`` caps a batch's padded tokens (long texts run in smaller batches): ``"auto"`` is
    :data:`~nlp_transfer.training.batches.CPU_BATCH_TOKENS` on a CPU and no cap elsewhere; None never caps.
    """
    keys = [k for k in task.batch_columns if k in rows and k != "labels"]
    examples = [{k: rows[k][i] for k in keys} for i in range(len(rows["input_ids"]))]
    if not examples:
        return np.zeros((0, len(task.labels)), dtype=np.float32)
    model.eval()
    budget = inference_token_budget(model.device) if max_batch_tokens == "auto" else max_batch_tokens
    batches = LengthSortedBatches.build(examples, task.collator(), batch_size, max_tokens=budget)
    with first_position_only(model, first_position):
        logits, _ = batches.outputs(logits_of(model), device=model.device)
    return logits


def text_logits(
    model: PreTrainedModel,
    task: SequenceClassificationTask,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    first_position: bool = True,
    max_batch_tokens: int | str | None = "auto",
) -> np.ndarray:
    """Sequence-classification logits for ``texts`` in their order (a windows run: pooled over each text's windows)."""
    rows, documents = task.encode_texts(texts, "predict")
    logits = batched_logits(
        model, task, rows, batch_size=batch_size, first_position=first_position, max_batch_tokens=max_batch_tokens
    )
    return task.document_logits(logits, documents, len(texts))


def predict_texts(
    model: PreTrainedModel,
    task: Task,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    first_position: bool = True,
    max_batch_tokens: int | str | None = "auto",
) -> list[dict[str, Any]]:
    """Predictions for ``texts`` in their order.

    Classification: dicts of text, label, score and every label's score. NER: dicts of text and
    entities (text, type, start and end character offsets, score). ``first_position`` and ``max_batch_tokens``:
    see :func:`batched_logits`.
    """
    options = {"batch_size": batch_size, "first_position": first_position, "max_batch_tokens": max_batch_tokens}
    texts = list(texts)
    if not texts:
        return []
    if isinstance(task, TokenClassificationTask):
        words_and_spans = [split_words(text) for text in texts]
        rows = task.encode_words([words for words, _ in words_and_spans])
        logits = batched_logits(model, task, rows, **options)
        return task.postprocess(logits, rows, texts, [spans for _, spans in words_and_spans])
    logits = text_logits(model, task, texts, **options)
    return task.postprocess(logits, texts)


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


# --------------------------------------------------------------------------- streaming a large file

#: texts predicted together when a file is streamed: memory stays that of one chunk, whatever the file's size
CHUNK_SIZE = 1024


def iter_texts(path: str, *, text_column: str = "text", encoding: str = "utf-8") -> Iterator[str]:
    """Texts of ``path`` read lazily, as :func:`read_texts` reads them: one per line, or a column of a table.

    .txt, csv, tsv and jsonl files are read a line at a time; a .json array is parsed whole (JSON cannot be
    read in pieces), so give a large file as jsonl. A bad row is a :class:`DataError` naming its line.
    """
    from nlp_transfer.data.readers import check_data_file, infer_format

    check_data_file(path)
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".txt", ""):
        format = infer_format(path, None)
        if format == "json":
            yield from read_texts(path, text_column=text_column, encoding=encoding)
            return
        if format not in ("csv", "tsv", "jsonl"):
            raise DataError(f"{path}: format '{format}' holds no texts to predict. Give a .txt, csv, tsv, json or jsonl file.")
    try:
        with open(file, encoding=encoding, newline="" if suffix in (".csv", ".tsv") else None) as handle:
            if suffix in (".txt", ""):
                yield from (line.strip() for line in handle if line.strip())
            elif suffix in (".jsonl", ".ndjson"):
                yield from _jsonl_texts(path, handle, text_column)
            else:
                yield from _table_texts(path, handle, "\t" if suffix == ".tsv" else ",", text_column)
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'. Pass --encoding, e.g. utf-8 or latin-1.") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: a byte cannot be decoded as {encoding} ({err.reason}). Pass --encoding.") from None


def _missing_column(path: str, text_column: str, columns: Sequence[str]) -> UserError:
    return UserError(f"{path}: no column '{text_column}'; the columns are {list(columns)}. Pass --text-column.")


def _table_texts(path: str, handle: Any, delimiter: str, text_column: str) -> Iterator[str]:
    """The ``text_column`` of a csv/tsv file with a header, a row at a time."""
    import csv

    reader = csv.reader(handle, delimiter=delimiter)
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise DataError(f"{path}: the file is empty. Give a file with data rows.")
    names = [cell.strip().removeprefix("\ufeff") for cell in header]
    if text_column not in names:
        raise _missing_column(path, text_column, names)
    index = names.index(text_column)
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                if len(row) <= index:
                    raise DataError(f"{path}:{reader.line_num}: expected {len(names)} fields, found {len(row)}.")
                yield row[index]
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed row ({err}).") from None


def _jsonl_texts(path: str, handle: Any, text_column: str) -> Iterator[str]:
    """The ``text_column`` of each JSON object of a jsonl file, a line at a time."""
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno}).") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{number}: expected a JSON object per line, found {type(obj).__name__}.")
        if text_column not in obj:
            raise _missing_column(path, text_column, list(obj))
        yield str(obj[text_column])


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of up to ``size`` consecutive items, read from ``items`` only as each list is needed."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def stream_predictions(
    model: Any, task: Task, texts: Iterable[str], *, batch_size: int = 64, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """Predictions for ``texts`` in their order, computed a chunk at a time as the caller consumes them.

    At most ``chunk_size`` texts and their predictions are held at once, so a file of any length
    streams through in constant memory (``texts`` should itself be lazy, e.g. :func:`iter_texts`). The garbage
    is collected after each chunk: forward passes leave reference cycles behind, which otherwise pile up between
    the collector's rare full passes, the more so the more forward passes a chunk takes.
    """
    if chunk_size < 1:
        raise UserError(f"chunk size must be at least 1, got {chunk_size}.")
    for chunk in chunked(texts, chunk_size):
        yield from predict_texts(model, task, chunk, batch_size=batch_size)
        gc.collect()


class Progress:
    """Texts done and their throughput, written to ``stream`` at most every ``every`` seconds and at the end."""

    def __init__(self, stream: Any, every: float = 2.0) -> None:
        self.stream, self.every = stream, every
        self.done = 0
        self.start = self.last = time.perf_counter()

    def update(self, count: int = 1) -> None:
        """Count ``count`` more texts; report when ``every`` seconds have passed since the last report."""
        self.done += count
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._write(now)

    def close(self) -> None:
        """The final report."""
        self._write(time.perf_counter(), final=True)

    def _write(self, now: float, final: bool = False) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        end = "\n" if final or not self.stream.isatty() else "\r"
        self.stream.write(f"{'predicted' if final else 'predicting:'} {self.done:,} texts, {rate:,.1f} texts/s{end}")
        self.stream.flush()


def non_empty(texts: Iterable[str]) -> Iterator[str] | None:
    """``texts`` as an iterator, or None when it yields nothing (reads only the first text to tell)."""
    iterator = iter(texts)
    for first in iterator:
        return chain([first], iterator)
    return None
