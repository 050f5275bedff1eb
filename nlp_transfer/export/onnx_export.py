"""Write a run's model as ONNX with torch's own exporter, and quantize it to int8 with onnxruntime.

optimum (the ecosystem's exporter) is not used: its ONNX package pins ``transformers<4.58`` and this
project runs transformers 5. Two routes, tried in this order:

1. BERT-family encoders (:data:`FUSABLE_TYPES`): torch's TorchScript exporter with eager attention, then
   onnxruntime's transformer optimizer fuses each layer's attention into one ``Attention`` op, the embeddings
   into ``EmbedLayerNormalization``, residual + layer norm into ``SkipLayerNormalization`` and bias + GELU into
   ``BiasGelu`` (contrib ops of onnxruntime's CPU provider; its own fusion code, no hand-written kernels).
   The optimizer only recognises the graph the TorchScript exporter writes: on the dynamo exporter's graph it
   fuses no attention. Measured on SST-2 (BENCHMARKS.md, 2026-12-03): int8 1.2x faster at batch 1, 1.3x at 32.
   A sequence classifier is traced with its last layer at the first position alone (``training/first_position.py``):
   that layer's one-query attention stays unfused, and the graph is about 1.1x faster again at batch 1 and 32, float32
   and int8, with the same labels (two A/B runs, 1.08x to 1.19x; BENCHMARKS.md, 2026-12-04).
2. Everything else, or when route 1 fails: ``torch.onnx.export(..., dynamo=True)``, which traces with
   ``torch.export``, so every module torch can run exports.

Both include :class:`MeanPooledModel`'s pooling in the graph, so the export runs without nlp-transfer. Whatever
the route, ``nlp-transfer export`` then scores the file against the torch model and refuses a bad one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError
from nlp_transfer.training.first_position import first_position_only

#: the graph's inputs, in the order of the wrapper's arguments; a model takes the ones its tokenizer gives
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 18
#: the TorchScript exporter's opset for route 1 (the newest it writes reliably for these encoders)
FUSED_OPSET = 17
#: ``config.model_type`` values whose encoder onnxruntime's optimizer fuses as ``bert``
FUSABLE_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
log = logging.getLogger(__name__)


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


def write_onnx(model: Any, task: Any, path: Path, *, first_position: bool = True) -> list[str]:
    """Export ``model`` (eval mode, on the CPU) to ``path`` with dynamic batch and sequence axes; returns the input names.

    A BERT-family encoder is written fused (route 1 of the module docstring) when that works; otherwise, and
    for every other architecture, through the dynamo exporter. An architecture torch cannot export is a
    UserError naming it, with the exporter's first line. ``first_position``: a fused sequence classifier's
    last layer computes only the position its head reads (false: every position, as the plain model).
    """
    names = graph_inputs(task)
    encoder = _pretrained(model)
    if encoder is not None and getattr(encoder.config, "model_type", None) in FUSABLE_TYPES:
        try:
            _write_fused(model, encoder, task, names, path, first_position)
            return names
        except Exception as err:  # any failure of the fused route falls back to the general one, which is checked too
            log.info(
                "fused ONNX export failed (%s); using the dynamo exporter", str(err).splitlines()[0][:200] if str(err) else err
            )
    _write_dynamo(model, task, names, path)
    return names


def _pretrained(model: Any) -> Any:
    """The outermost Hugging Face model inside ``model`` (itself, or the encoder a wrapper holds); None if there is none."""
    from transformers import PreTrainedModel

    return next((module for module in model.modules() if isinstance(module, PreTrainedModel)), None)


@contextlib.contextmanager
def _quiet_exporter() -> Any:
    """Silence the exporters' notes, warnings and prints, which are not the user's to act on."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)


def _write_fused(model: Any, encoder: Any, task: Any, names: list[str], path: Path, first_position: bool) -> None:
    """Route 1: TorchScript export with eager attention, then onnxruntime's BERT fusions; raises when either fails."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model

    inputs = example_inputs(task, names)
    module = _logits_module(model, names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    previous = encoder.config._attn_implementation
    encoder.set_attn_implementation("eager")  # the attention pattern the optimizer recognises
    try:
        with _quiet_exporter(), torch.no_grad(), first_position_only(model, first_position):
            logits_rank = module(*inputs).dim()
            axes["logits"] = {0: "batch", 1: "sequence"} if logits_rank == 3 else {0: "batch"}
            raw = path.with_name(f".raw-{path.name}")
            torch.onnx.export(module, inputs, str(raw), dynamo=False, input_names=names, output_names=["logits"],
                              dynamic_axes=axes, opset_version=FUSED_OPSET)  # fmt: skip
    finally:
        encoder.set_attn_implementation(previous)
    try:
        heads, hidden = encoder.config.num_attention_heads, encoder.config.hidden_size
        with _quiet_exporter():
            optimized = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
        optimized.save_model_to_file(str(path))
    finally:
        raw.unlink(missing_ok=True)


def _write_dynamo(model: Any, task: Any, names: list[str], path: Path) -> None:
    """Route 2: ``torch.onnx.export(..., dynamo=True)``; an architecture it cannot export is a UserError."""
    import torch

    dynamic = {name: {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC} for name in names}
    module = _logits_module(model, names)
    try:
        with _quiet_exporter(), torch.no_grad():
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
    program.save(str(path), external_data=False)


def fused_operators(path: Path) -> dict[str, int]:
    """How many nodes of each onnxruntime contrib op (``com.microsoft`` domain) the graph at ``path`` holds."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.domain == "com.microsoft":
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly) of ``source`` into ``target``.

    Weights are quantized per output channel with 7-bit range (``per_channel``, ``reduce_range``): on Amazon
    kitchen reviews the per-tensor default changed 3 % of the labels (-1.3 to -2.0 accuracy points), these
    settings 0.3 to 0.7 % (BENCHMARKS.md, 2026-12-03), at about 10 % of int8's speed.
    """
    from nlp_transfer.export.onnx_backend import require_onnxruntime

    require_onnxruntime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint through the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            # the fused ops' outputs have no inferred type; the quantizer needs one for the MatMuls that read them
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)
