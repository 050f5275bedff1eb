"""Write a run's model as ONNX with torch's own exporter, and quantize it to int8 with onnxruntime.

optimum (the ecosystem's exporter) is not used: its ONNX package pins ``transformers<4.58`` and this
project runs transformers 5. ``torch.onnx.export(..., dynamo=True)`` traces the model with ``torch.export``,
so every module torch can run exports, including :class:`MeanPooledModel`, whose head reads the mean of
the token states: the pooling becomes part of the graph and the export runs without nlp-transfer.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError

#: the graph's inputs, in the order of the wrapper's arguments; a model takes the ones its tokenizer gives
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 18


def graph_inputs(task: Any) -> list[str]:
    """The inputs the run's tokenizer gives, in :data:`INPUT_NAMES` order (``token_type_ids`` only for models using them)."""
    encoded = task.tokenizer(["a b"], return_tensors="pt")
    names = [name for name in INPUT_NAMES if name in encoded]
    if "input_ids" not in names:
        raise UserError(f"{task.model_name}: its tokenizer gives no input_ids; only text models export to ONNX.")
    return names


def _logits_module(model: Any, names: list[str]) -> Any:
    """A module whose forward takes the inputs positionally and returns the logits alone (what the graph outputs)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    return Logits().eval()


def example_inputs(task: Any, names: list[str]) -> tuple[Any, ...]:
    """Two padded texts of different lengths: batch and sequence sizes above 1, so neither is fixed in the graph."""
    texts = ["an example sentence to trace the model with", "a shorter one"]
    encoded = task.tokenizer(texts, padding=True, truncation=True, max_length=task.max_length, return_tensors="pt")
    return tuple(encoded[name] for name in names)


def write_onnx(model: Any, task: Any, path: Path) -> list[str]:
    """Export ``model`` (eval mode, on the CPU) to ``path`` with dynamic batch and sequence axes; returns the input names.

    An architecture torch cannot export is a UserError naming it, with the exporter's first line.
    """
    import torch

    names = graph_inputs(task)
    dynamic = {name: {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC} for name in names}
    module = _logits_module(model, names)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and other notes that are not ours to act on
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example_inputs(task, names),
                dynamo=True,
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=(tuple(dynamic[name] for name in names),),
                opset_version=OPSET,
                verbose=False,
            )
    except Exception as err:
        model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot export this {model_type} model to ONNX with torch's exporter: {first}") from err
    finally:
        exporter_log.setLevel(level)
    program.save(str(path), external_data=False)
    return names


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly) of ``source`` into ``target``.

    Weights are quantized per output channel with 7-bit range (``per_channel``, ``reduce_range``): on Amazon
    kitchen reviews the per-tensor default changed 3 % of the labels (-1.3 to -2.0 accuracy points), these
    settings 0.3 to 0.7 % (BENCHMARKS.md, 2026-12-03), at about 10 % of int8's speed.
    """
    from nlp_transfer.export.onnx_backend import require_onnxruntime

    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint through the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    finally:
        root.setLevel(level)
