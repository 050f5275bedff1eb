"""Predict and evaluate with a saved run directory: batched, length-sorted, any device.

:mod:`~nlp_transfer.inference.loading` loads a run (torch or ONNX), :mod:`~nlp_transfer.inference.logits` computes
logits, :mod:`~nlp_transfer.inference.predict` turns them into predictions and metrics; the texts of a file are read
by :mod:`nlp_transfer.data.texts`.
"""

from nlp_transfer.data.texts import iter_numbered_texts, iter_texts, non_empty, read_texts
from nlp_transfer.inference.loading import (
    BACKENDS,
    CALIBRATION_FILE,
    load_backend,
    load_run,
    read_calibration,
    read_temperature,
    run_task,
)
from nlp_transfer.inference.logits import batched_logits, labelled_file_logits, labelled_text_logits, text_logits
from nlp_transfer.inference.predict import (
    CHUNK_SIZE,
    Progress,
    evaluate_file,
    predict,
    predict_texts,
    stream_predictions,
)

__all__ = [
    "BACKENDS",
    "CALIBRATION_FILE",
    "CHUNK_SIZE",
    "Progress",
    "batched_logits",
    "evaluate_file",
    "iter_numbered_texts",
    "iter_texts",
    "labelled_file_logits",
    "labelled_text_logits",
    "load_backend",
    "load_run",
    "non_empty",
    "predict",
    "predict_texts",
    "read_calibration",
    "read_temperature",
    "read_texts",
    "run_task",
    "stream_predictions",
    "text_logits",
]
