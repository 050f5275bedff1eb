"""Run an ONNX export with onnxruntime, as a model that ``nlp_transfer.inference`` can use in place of torch's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from nlp_transfer.errors import UserError

#: the export folder inside a run directory, and the files in it
EXPORT_DIR = "onnx"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INFO_FILE = "export.json"
INSTALL_HINT = 'pip install "nlp-transfer[export]"'


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a UserError that says how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"onnxruntime is not installed; ONNX export and --backend onnx need it: {INSTALL_HINT}") from None
    return onnxruntime


def open_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``path``; a UserError when the file is missing or not a valid ONNX model."""
    ort = require_onnxruntime()
    if not path.is_file():
        raise UserError(f"{path}: no such ONNX file. Export the run first: nlp-transfer export RUN_DIR.")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no graph-optimization chatter on stderr
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a valid ONNX model ({first}). Export the run again: nlp-transfer export RUN_DIR.") from None


class OnnxModel:
    """An ONNX session that answers like a Hugging Face model: ``model(**batch).logits``, ``.device``, ``.eval()``.

    The batch is a collator's output (torch tensors); inputs the graph does not take are dropped, and
    ``token_type_ids`` it takes but the batch lacks are zeros, as the model's own default.
    """

    device = "cpu"

    def __init__(self, session: Any, path: Path | None = None) -> None:
        self.session = session
        self.path = path
        self.input_names = [i.name for i in session.get_inputs()]

    def eval(self) -> OnnxModel:
        """Nothing to switch: an exported graph is always in inference mode."""
        return self

    def run(self, batch: dict[str, Any]) -> np.ndarray:
        """The logits (numpy) for a batch of tensors or arrays."""
        ids = np.asarray(batch["input_ids"])
        feeds = {}
        for name in self.input_names:
            value = batch.get(name)
            feeds[name] = np.zeros_like(ids, dtype=np.int64) if value is None else np.asarray(value, dtype=np.int64)
        return self.session.run(None, feeds)[0]

    def __call__(self, **batch: Any) -> Any:
        """``SimpleNamespace(logits=tensor)``, the part of a model output that inference reads."""
        import torch

        return SimpleNamespace(logits=torch.from_numpy(self.run(batch)))


def export_info(export_dir: Path) -> dict[str, Any]:
    """The export's ``export.json`` (what ``nlp-transfer export`` wrote and checked)."""
    path = export_dir / INFO_FILE
    if not path.is_file():
        raise UserError(
            f"{export_dir}: no ONNX export here (no {INFO_FILE}). Run nlp-transfer export RUN_DIR first, "
            "or pass --export-dir to the folder it wrote."
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("model_file"), str):
        raise UserError(f"{path}: not an export record of nlp-transfer export. Export the run again.")
    return info


#: the weight files of a run that an export was made from: the model (plain, merged or sharded), or the adapter alone
WEIGHT_GLOBS = ("model*.safetensors", "adapter/adapter_model.safetensors")


def weights_fingerprint(run_dir: Path) -> str:
    """The sha256 of the run's weight files (:data:`WEIGHT_GLOBS`): which weights an export was made from."""
    digest = hashlib.sha256()
    for pattern in WEIGHT_GLOBS:
        for path in sorted(run_dir.glob(pattern)):
            digest.update(path.name.encode("utf-8"))
            with path.open("rb") as weights:
                while chunk := weights.read(1 << 22):
                    digest.update(chunk)
    return digest.hexdigest()


def check_export_of_run(run_dir: Path, folder: Path, info: dict[str, Any], labels: list[str] | None = None) -> None:
    """Refuse an export made from other weights or labels than ``run_dir`` holds now (another run's export, or one
    made before the run was trained again): it would answer for a model the run no longer is."""
    recorded = info.get("weights_sha256")  # absent from exports made before it was recorded: labels checked alone
    other_weights = recorded is not None and recorded != weights_fingerprint(run_dir)
    other_labels = labels is not None and isinstance(info.get("labels"), list) and list(info["labels"]) != list(labels)
    if other_weights or other_labels:
        raise UserError(
            f"{folder}: an export of other {'weights' if other_weights else 'labels'} than {run_dir} holds now (another "
            f"run's export, or the run was trained again since). Export this run again: nlp-transfer export {run_dir}"
        )


def load_onnx_run(
    run_dir: str | Path, *, export_dir: str | Path | None = None, trust_remote_code: bool = False, threads: int | None = None
) -> tuple[OnnxModel, Any]:
    """The run's export (the model file that ``export.json`` names, int8 when exported with --int8) and its task.

    The task (tokenizer, labels, temperature, threshold) comes from the run directory, as :func:`load_run` builds it.
    """
    from transformers import AutoConfig

    from nlp_transfer.inference import run_task
    from nlp_transfer.inference.loading import require_saved_model

    run_dir = Path(run_dir)
    require_saved_model(run_dir)
    folder = Path(export_dir) if export_dir else run_dir / EXPORT_DIR
    info = export_info(folder)
    config = AutoConfig.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    task = run_task(run_dir, config, trust_remote_code=trust_remote_code)
    check_export_of_run(run_dir, folder, info, list(task.labels))
    path = folder / info["model_file"]
    return OnnxModel(open_session(path, threads), path), task
