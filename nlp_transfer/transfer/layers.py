"""Find the parts of a pretrained encoder: embeddings, the stack of layers, and the task head."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nlp_transfer.errors import UserError


@dataclass
class EncoderParts:
    """Parameter names of a model, split into embeddings, one list per layer (bottom first), and head.

    ``head`` is everything outside the pretrained encoder plus its pooler: it trains in every strategy.
    ``other`` holds encoder parameters outside the layers (e.g. DeBERTa's relative embeddings).
    """

    embeddings: list[str]
    layers: list[list[str]]
    other: list[str]
    head: list[str]


def find_layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The encoder's stack of layers (its largest ``nn.ModuleList`` of blocks) and its name inside ``model.base_model``.

    ``model`` is a model with a task head or the bare encoder (``AutoModel``), whose ``base_model`` is itself.
    """
    base = getattr(model, "base_model", model)
    layer_lists = [
        (name, module)
        for name, module in base.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and not name.endswith("attention")
    ]
    if not layer_lists or not hasattr(base, "embeddings"):
        raise UserError(
            f"{type(model).__name__}: unknown architecture, no embeddings and layer stack found. "
            "Supported: BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA and similar encoders; use strategy=full otherwise."
        )
    return max(layer_lists, key=lambda item: len(item[1]))


def find_encoder_parts(model: nn.Module) -> EncoderParts:
    """Split ``model``'s parameters for BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA and look-alikes.

    The encoder is ``model.base_model``; its layer stack is its largest ``nn.ModuleList`` of blocks.
    """
    base = getattr(model, "base_model", None)
    prefix = getattr(model, "base_model_prefix", "")
    if base is None or base is model or not prefix:
        raise UserError(
            f"{type(model).__name__}: cannot find the pretrained encoder (no base_model). "
            "Use strategy=full for this architecture."
        )
    stack_name, stack = find_layer_stack(model)
    full = lambda local: f"{prefix}.{local}"  # noqa: E731
    layers = [[full(f"{stack_name}.{i}.{n}") for n, _ in block.named_parameters()] for i, block in enumerate(stack)]
    in_layers = {n for layer in layers for n in layer}
    embeddings = [full(f"embeddings.{n}") for n, _ in base.embeddings.named_parameters()]
    pooler = (
        {full(f"pooler.{n}") for n, _ in base.pooler.named_parameters()} if getattr(base, "pooler", None) is not None else set()
    )
    names = [n for n, _ in model.named_parameters()]
    head = [n for n in names if not n.startswith(prefix + ".") or n in pooler]
    taken = in_layers | set(embeddings) | set(head)
    other = [n for n in names if n not in taken]
    return EncoderParts(embeddings=embeddings, layers=layers, other=other, head=head)
