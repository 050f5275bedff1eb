"""A saved run directory back in memory: its model and task, the ONNX backend, the calibration it was checked with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer, PreTrainedModel

from nlp_transfer.errors import UserError
from nlp_transfer.models import check_tokenizer_files, load_pretrained, read_model_config
from nlp_transfer.run_info import RunInfo
from nlp_transfer.tasks import Task
from nlp_transfer.tasks.classification import SequenceClassificationTask
from nlp_transfer.tasks.token_classification import TokenClassificationTask
from nlp_transfer.tasks.windows import CONFIG_KEY, WindowSettings
from nlp_transfer.transfer.feature_extraction import POOLING_KEY, MeanPooledModel
from nlp_transfer.transfer.peft_adapters import adapter_weights_file, is_adapter_run, load_adapter_run


def load_run(
    run_dir: str | Path,
    *,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    device: str | None = None,
    calibrated: bool = True,
) -> tuple[PreTrainedModel, Task]:
    """The saved model (in eval mode) and a task rebuilt from its config and run info.

    ``calibrated=False`` leaves out what ``nlp-transfer check`` stored (calibration.json): the check itself fits it
    anew, and so replaces a damaged one instead of stopping on it.
    """
    run_dir = Path(run_dir)
    require_saved_model(run_dir)
    adapter_only = is_adapter_run(run_dir)  # a lora run saved with transfer.save_merged=false
    has_safetensors = any(run_dir.glob("*.safetensors"))
    if not adapter_only and not has_safetensors and not any(run_dir.glob("*.bin")):
        raise UserError(f"{run_dir}: no model weights (no model.safetensors); the run is incomplete. Train it again.")
    if adapter_only:  # its weights are the adapter's: a pickled adapter_model.bin is refused as a pytorch_model.bin is
        adapter_weights_file(run_dir, allow_pickle=allow_pickle)
    elif not allow_pickle and not has_safetensors:
        raise UserError(
            f"{run_dir}: no safetensors weights. Pickle-based weights (.bin) can run code when loaded; "
            "pass --allow-pickle only if you trust where they came from."
        )
    config = read_model_config(run_dir, trust_remote_code=trust_remote_code)
    is_tagger = any(name.endswith("ForTokenClassification") for name in (config.architectures or []))
    auto = AutoModelForTokenClassification if is_tagger else AutoModelForSequenceClassification
    if adapter_only:
        model = load_adapter_run(run_dir, auto, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    else:
        model = load_pretrained(auto, str(run_dir), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if getattr(model.config, POOLING_KEY, "cls") == "mean":  # a feature-extraction run whose head reads the mean
        model = MeanPooledModel(model)
    task = run_task(run_dir, model.config, trust_remote_code=trust_remote_code, calibrated=calibrated)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), task


def require_saved_model(run_dir: Path) -> None:
    """A UserError unless ``run_dir`` is a folder holding a saved model's config.json, saying which of the two it lacks."""
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such run directory. Give the output_dir of a finished run.")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: a file, not a run directory. Give the output_dir of a finished run.")
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a saved model (no config.json). Give the output_dir of a finished run.")


#: the tasks a saved run is served as (predict, evaluate, check, export); a run of another task has its own code
SERVED_TASKS = ("classification", "multilabel", "ner")


def check_served_task(run_dir: Path, task: str) -> None:
    """Refuse a run whose task this package does not serve (a model folder from elsewhere has none: it passes)."""
    if not task or task in SERVED_TASKS:
        return
    if task == "masked-lm":
        raise UserError(
            f"{run_dir}: an adapted encoder (nlp-transfer adapt) with no task head, so it has nothing to predict. "
            "Name it as model: in a train config, then predict with that run."
        )
    raise UserError(
        f"{run_dir}: a run of task={task}, which predict, evaluate, check and export do not serve "
        f"(they serve {', '.join(SERVED_TASKS)}). Load it with that task's own code."
    )


def run_task(run_dir: str | Path, config: Any, *, trust_remote_code: bool = False, calibrated: bool = True) -> Task:
    """The task of a saved run, rebuilt from its model ``config`` (labels, head), tokenizer and run info."""
    run_dir = Path(run_dir)
    is_tagger = any(name.endswith("ForTokenClassification") for name in (config.architectures or []))
    check_tokenizer_files(run_dir)
    info = RunInfo.read(run_dir)
    check_served_task(run_dir, info.task)
    tokenizer = AutoTokenizer.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
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
    temperature, top_label_map = read_calibration(run_dir) if calibrated else (1.0, None)
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
