"""Predictions and metrics of a saved run: for a list of texts, a labelled file, or a stream of any length."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedModel

from nlp_transfer.config import DataConfig
from nlp_transfer.data.tagged_rows import read_tagged_file
from nlp_transfer.data.texts import chunked
from nlp_transfer.errors import DataError, UserError, refuse_one_string
from nlp_transfer.inference.loading import load_run
from nlp_transfer.inference.logits import batched_logits, labelled_file_logits, text_logits
from nlp_transfer.tasks import Task
from nlp_transfer.tasks.token_classification import TokenClassificationTask, split_words


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
    entities (text, type, start and end character offsets, score); each text is read as a document of its own.
    ``first_position`` and ``max_batch_tokens``: see :func:`batched_logits`.
    """
    options = {"batch_size": batch_size, "first_position": first_position, "max_batch_tokens": max_batch_tokens}
    texts = checked_texts(texts)
    if not texts:
        return []
    if isinstance(task, TokenClassificationTask):
        words_and_spans = [split_words(text) for text in texts]
        # each text is a document of its own: with document_context, the windows of a long text are framed by that
        # text's other words (as evaluate frames a sentence), never by the words of another text
        rows = task.encode_words([words for words, _ in words_and_spans], documents=list(range(len(texts))))
        logits = batched_logits(model, task, rows, **options)
        return task.postprocess(logits, rows, texts, [spans for _, spans in words_and_spans])
    logits = text_logits(model, task, texts, **options)
    return task.postprocess(logits, texts)


def checked_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of strings: one string alone is refused (it was read as its characters, a prediction each),
    and so is an item that is not a string, naming its position."""
    refuse_one_string(texts, "texts")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise UserError(f"texts[{index}] is {text!r} ({type(text).__name__}); every text must be a string.")
    return texts


def predict(run_dir: str | Path, texts: Sequence[str], *, batch_size: int = 64, **load_kwargs: Any) -> list[dict[str, Any]]:
    """Load ``run_dir`` and predict ``texts`` (see :func:`predict_texts`)."""
    texts = checked_texts(texts)  # before the model loads
    model, task = load_run(run_dir, **load_kwargs)
    return predict_texts(model, task, texts, batch_size=batch_size)


def evaluate_file(
    run_dir: str | Path, path: str, data: DataConfig, *, batch_size: int = 64, max_rows: int | None = None, **load_kwargs: Any
) -> dict[str, Any]:
    """The run's metrics on a labelled file read with ``data``'s options.

    Only its first ``max_rows`` rows (or sentences) are scored; ``max_rows=None`` takes ``data.max_eval_samples``,
    as a training run cuts its test split (None there too: every row).
    """
    max_rows = data.max_eval_samples if max_rows is None else max_rows
    model, task = load_run(run_dir, **load_kwargs)
    if isinstance(task, TokenClassificationTask):
        import datasets

        sentences = read_tagged_file(path, data).sentences[:max_rows]
        known = set(task.labels)
        for sentence in sentences:
            unknown = sentence.first_unknown(known)
            if unknown:
                raise DataError(f"{path}:{unknown[1]}: tag '{unknown[0]}' is not one of the model's tags {task.labels}.")
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
    return task.compute_metrics(*labelled_file_logits(model, task, path, data, batch_size=batch_size, max_rows=max_rows))


#: texts predicted together when a file is streamed: memory stays that of one chunk, whatever the file's size
CHUNK_SIZE = 1024


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
