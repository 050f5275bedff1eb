"""``nlp-transfer export RUN_DIR``: write the run as ONNX, check it on the validation split, then move it in place.

Everything is written to a temporary folder beside the target; only an export that passes the check is moved
to ``RUN_DIR/onnx`` (or ``--output``), so a refused or failed export leaves nothing behind, and an earlier
export stays until a new one replaces it whole. The staging folder's name carries the exporting process's id: the next
export removes it only once that process is gone (killed outright). While it runs, an export holds the run's lock
(:func:`nlp_transfer.output_dir.run_lock`), and the output folder's when that lies outside the run, so a second export,
a training run or a check in the same folder is refused instead of writing into it at the same time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError
from nlp_transfer.export.onnx_backend import (
    EXPORT_DIR,
    INFO_FILE,
    INT8_FILE,
    MODEL_FILE,
    OnnxModel,
    open_session,
    weights_fingerprint,
)
from nlp_transfer.export.validation import ValidationSet, compare, validation_set
from nlp_transfer.output_dir import holds_lock, run_lock

DEFAULT_MAX_DROP = 0.5
#: the float graph computes what the PyTorch model computes: its logits may differ by float rounding (1e-5 and less
#: measured, fused attention included), not by this much
FLOAT_LOGIT_TOLERANCE = 0.01
#: the int8 graph's decisions may differ from the float model's on near ties, on no more than this share of them
MIN_INT8_AGREEMENT = 0.9
#: what a second export of a run in use is told
LOCK_ADVICE = "wait for it to end, then export again"


class ExportRefused(Exception):
    """The exported model scores more than ``max_drop`` points below the run on its validation split."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def check_run_dir(run_dir: Path) -> None:
    """A UserError unless ``run_dir`` holds a saved model that nlp-transfer trained."""
    from nlp_transfer.inference.loading import require_saved_model

    require_saved_model(run_dir)


def score(model: Any, task: Any, data: ValidationSet, batch_size: int) -> Any:
    """The logits of the validation texts (``model`` is a torch model or an :class:`OnnxModel`).

    A windows run's texts are scored window by window and pooled per text, as ``predict`` scores them.
    """
    from nlp_transfer.inference import batched_logits

    return data.per_text(task, batched_logits(model, task, data.rows, batch_size=batch_size))


def build_export(
    run_dir: Path, folder: Path, *, int8: bool, batch_size: int, trust_remote_code: bool = False, allow_pickle: bool = False
) -> dict[str, Any]:
    """Write the ONNX file(s) into ``folder`` and compare each with the torch model; returns the export record.

    ``trust_remote_code`` and ``allow_pickle`` say how the run may be loaded, as for predict.
    """
    from nlp_transfer.export.onnx_export import fused_operators, quantize_int8, write_onnx
    from nlp_transfer.inference import load_run

    model, task = load_run(run_dir, device="cpu", trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    data = validation_set(run_dir, task)
    started = time.perf_counter()
    inputs = write_onnx(model, task, folder / MODEL_FILE)
    files = [MODEL_FILE]
    if int8:
        quantize_int8(folder / MODEL_FILE, folder / INT8_FILE)
        files.append(INT8_FILE)
    seconds = time.perf_counter() - started
    reference = score(model, task, data, batch_size)
    checks = {
        name: compare(task, reference, score(OnnxModel(open_session(folder / name)), task, data, batch_size), data)
        for name in files
    }
    return {
        "run": run_dir.name,
        "model_file": files[-1],
        "files": files,
        "int8": int8,
        "inputs": inputs,
        "outputs": ["logits"],
        "fused_operators": fused_operators(folder / MODEL_FILE),  # empty: the unfused (dynamo) graph
        "task": "ner" if reference.ndim == 3 else "multilabel" if getattr(task, "multi_label", False) else "classification",
        "labels": list(task.labels),
        "max_length": task.max_length,
        "checked_on": data.source,
        "checks": checks,
        "export_seconds": round(seconds, 2),
        "weights_sha256": weights_fingerprint(run_dir),  # predict and push refuse the export once the weights change
    }


def check_replaceable(output: Path, run_dir: Path) -> None:
    """Refuse an ``--output`` that exists and is not an earlier export (a file, a run, any other folder): it would be replaced.

    An export folder inside another run is refused too: that run's predict and push would serve this run's model.
    """
    owner = output.resolve().parent
    if owner != run_dir.resolve() and (owner / "run_info.json").is_file():
        raise UserError(
            f"--output {output} is inside another run ({owner}), whose predict --backend onnx and push --onnx would "
            "then serve this run's model. Choose a folder outside other runs, or leave --output out (RUN_DIR/onnx)."
        )
    if not output.exists() and not output.is_symlink():
        return
    if output.is_dir() and (not any(output.iterdir()) or (output / INFO_FILE).is_file()):
        return  # an empty folder, or an earlier export (export.json): the new export replaces it
    what = "a file" if not output.is_dir() else "a folder that is not an earlier export (no export.json)"
    raise UserError(
        f"--output {output} exists and is {what}; export replaces its output folder, so it will not touch this. "
        "Choose a new folder (or the run's own RUN_DIR/onnx)."
    )


def _move_in_place(staging: Path, output: Path) -> None:
    """Replace ``output`` with ``staging`` (an earlier export is removed only once the new one is in place)."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{time.time_ns()}")
        output.rename(old)
    staging.rename(output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def refusal(report: dict[str, Any], max_drop: float) -> str | None:
    """Why the export in ``report`` must not be written, or None: the served file scores more than ``max_drop`` points
    below the run, the float graph's logits are not the PyTorch model's (:data:`FLOAT_LOGIT_TOLERANCE`; a metric near
    chance or a small split hides a broken graph), or the int8 graph disagrees on too many decisions."""
    served, checks = report["checks"][report["model_file"]], report["checks"]
    if served["drop_points"] > max_drop:
        return (
            f"{report['model_file']} scores {served['metric']} {served['after']:.4f} against {served['before']:.4f} for "
            f"the run ({served['drop_points']:.2f} points lower, --max-drop {max_drop})"
        )
    float_check = checks[MODEL_FILE]
    if not float_check["max_logit_difference"] <= FLOAT_LOGIT_TOLERANCE:
        return (
            f"{MODEL_FILE}'s logits differ from the PyTorch model's by up to {float_check['max_logit_difference']:.4g} "
            f"(float rounding stays under {FLOAT_LOGIT_TOLERANCE}; labels agree on {100 * float_check['label_agreement']:.1f} "
            "% of the decisions): the graph does not compute the model. Report it with the run's model architecture"
        )
    if INT8_FILE in checks and checks[INT8_FILE]["label_agreement"] < MIN_INT8_AGREEMENT:
        return (
            f"{INT8_FILE} agrees with the PyTorch model on {100 * checks[INT8_FILE]['label_agreement']:.1f} % of the "
            f"decisions (at least {100 * MIN_INT8_AGREEMENT:.0f} % expected); export without --int8"
        )
    return None


def staging_prefix(output: Path) -> str:
    """The name of a staging folder of ``output`` up to the exporting process's id: ``.NAME.partial-``."""
    return f".{output.name}.partial-"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this machine (this process counts as alive)."""
    if pid <= 0 or os.name == "nt":  # os.kill(pid, 0) would end the process on Windows: keep what might be live
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, OSError):
        return False
    return True


def remove_stale_staging(output: Path) -> None:
    """Delete the staging folders beside ``output`` whose export was killed outright (SIGKILL).

    While this process holds the lock of the folder they lie in (or of ``output``), no other export can be writing
    them: every one goes, whatever process id its name carries (in a container every export is pid 1, and ids come
    back after a reboot). Without the lock, those whose process is gone, this process's own and those without a
    process id in their name (left by an older version) go; another live export's stays."""
    prefix = staging_prefix(output)
    locked = holds_lock(output.parent) or holds_lock(output)
    for folder in output.parent.iterdir():
        if not folder.name.startswith(prefix):
            continue
        pid = folder.name[len(prefix) :].split("-")[0]
        live = pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid))
        if locked or not live:
            shutil.rmtree(folder, ignore_errors=True)


def write_export(run_dir: Path, output: Path, *, max_drop: float, **build: Any) -> dict[str, Any]:
    """Build and check the export in a staging folder beside ``output``, then move it in place; the export record.

    ``build``: :func:`build_export`'s keyword arguments (``int8``, ``batch_size`` and how the run may be loaded)."""
    remove_stale_staging(output)
    staging = Path(tempfile.mkdtemp(prefix=f"{staging_prefix(output)}{os.getpid()}-", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the export is as readable as the run beside it
    try:
        report = build_export(run_dir, staging, **build)
        report["max_drop"] = max_drop
        reason = refusal(report, max_drop)
        if reason:
            raise ExportRefused(f"export refused: {reason}; nothing was written.", report)
        (staging / INFO_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        _move_in_place(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def export_run(
    run_dir: str | Path,
    *,
    output: str | Path | None = None,
    int8: bool = False,
    max_drop: float = DEFAULT_MAX_DROP,
    batch_size: int = 64,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Export ``run_dir`` to ONNX (``output``, default ``RUN_DIR/onnx``), checked on its validation split.

    ``trust_remote_code`` and ``allow_pickle`` say how the run may be loaded, as for predict.

    Returns the record also written to ``export.json``. Raises :class:`ExportRefused` (nothing written) when
    the served model (int8 with ``int8``) is more than ``max_drop`` points below the torch model, and a UserError
    when another nlp-transfer process is writing the run (or ``output``).
    """
    from nlp_transfer.export.onnx_backend import require_onnxruntime

    run_dir = Path(run_dir)
    require_onnxruntime()
    check_run_dir(run_dir)
    if not (math.isfinite(max_drop) and max_drop >= 0):  # NaN passed every comparison: the check was off
        raise UserError(f"--max-drop must be a number of points, 0 or more, got {max_drop}.")
    output = Path(output) if output else run_dir / EXPORT_DIR
    check_replaceable(output, run_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as locks:
        locks.enter_context(run_lock(run_dir, LOCK_ADVICE))
        if run_dir.resolve() not in output.resolve().parents:  # an --output outside the run has its own lock
            locks.enter_context(run_lock(output, LOCK_ADVICE))
        load = {"trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle}
        report = write_export(run_dir, output, max_drop=max_drop, int8=int8, batch_size=batch_size, **load)
    report["output"] = str(output)
    return report
