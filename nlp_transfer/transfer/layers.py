"""Find the parts of a pretrained encoder: embeddings, the stack of layers, and the task head.

Some encoders run one set of layer weights several times (ALBERT shares one layer across all of its layers).
Their layers cannot be frozen, cut or given learning rates one by one: :func:`find_layer_stack` refuses them, and
the :class:`EncoderParts` of such a model refuse any use of their ``layers`` (head and embeddings stay usable).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from torch import nn

from nlp_transfer.errors import UserError

#: the options that need one block of weights per layer, and what a model whose layers share weights can use instead
SHARED_LAYERS_FIX = (
    "transfer.depth, transfer.freeze_layers, transfer.layer_lr_decay, strategy=gradual_unfreezing and rank's @depth do "
    "not apply to it; use strategy=full, lora or frozen without them"
)


class SharedLayers(Sequence[list[str]]):
    """The ``layers`` of a model whose layers share weights: any use (length, index, iteration) raises the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __len__(self) -> int:
        raise UserError(self.reason)

    def __getitem__(self, index: int | slice) -> list[str]:  # type: ignore[override]
        raise UserError(self.reason)

    def __iter__(self) -> Iterator[list[str]]:
        raise UserError(self.reason)

    def __repr__(self) -> str:
        return f"SharedLayers({self.reason!r})"


@dataclass
class EncoderParts:
    """Parameter names of a model, split into embeddings, one list per layer (bottom first), and head.

    ``head`` is everything outside the pretrained encoder plus its pooler: it trains in every strategy.
    ``other`` holds encoder parameters outside the layers (e.g. DeBERTa's relative embeddings, or the one layer
    ALBERT shares across its stack). ``pooler`` names the pooler's parameters (a part of ``head``; empty when the
    model has none). ``layers`` is a :class:`SharedLayers` when the layers share weights.
    """

    embeddings: list[str]
    layers: Sequence[list[str]]
    other: list[str]
    head: list[str]
    pooler: list[str] = field(default_factory=list)


def _candidate_stacks(model: nn.Module) -> tuple[nn.Module, list[tuple[str, nn.ModuleList]]]:
    """``model``'s encoder and its non-empty ``nn.ModuleList``s of blocks (attention head lists left out)."""
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
    return base, layer_lists


def inspect_layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList, str]:
    """The largest stack of blocks, its name, and why its blocks are not one per layer ("" when they are)."""
    base, layer_lists = _candidate_stacks(model)
    name, stack = max(layer_lists, key=lambda item: len(item[1]))
    config = getattr(model, "config", None) or getattr(base, "config", None)
    runs = getattr(config, "num_hidden_layers", None)
    if isinstance(runs, int) and not isinstance(runs, bool) and runs > len(stack):
        reason = (
            f"{type(model).__name__}: its {runs} encoder layers share the weights of {len(stack)} block(s) ({name}), "
            f"so they cannot be frozen, cut or given learning rates one by one: {SHARED_LAYERS_FIX}."
        )
        return name, stack, reason
    return name, stack, ""


def find_layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The encoder's stack of layers (its largest ``nn.ModuleList`` of blocks) and its name inside ``model.base_model``.

    ``model`` is a model with a task head or the bare encoder (``AutoModel``), whose ``base_model`` is itself.
    A model whose layers share weights (fewer blocks than ``config.num_hidden_layers``, as ALBERT) is refused.
    """
    name, stack, shared = inspect_layer_stack(model)
    if shared:
        raise UserError(shared)
    return name, stack


def pooler_parameters(model: nn.Module) -> list[str]:
    """Full names of the parameters of ``model``'s pooler: BERT's and ALBERT's inside the encoder, DeBERTa's beside it."""
    base = getattr(model, "base_model", model)
    prefix = getattr(model, "base_model_prefix", "")
    names: list[str] = []
    inner = getattr(base, "pooler", None)
    if isinstance(inner, nn.Module):
        names += [f"{prefix}.pooler.{n}" if base is not model else f"pooler.{n}" for n, _ in inner.named_parameters()]
    outer = getattr(model, "pooler", None) if base is not model else None
    if isinstance(outer, nn.Module):
        names += [f"pooler.{n}" for n, _ in outer.named_parameters()]
    return names


def find_encoder_parts(model: nn.Module) -> EncoderParts:
    """Split ``model``'s parameters for BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA, ALBERT and look-alikes.

    The encoder is ``model.base_model``; its layer stack is its largest ``nn.ModuleList`` of blocks.
    """
    base = getattr(model, "base_model", None)
    prefix = getattr(model, "base_model_prefix", "")
    if base is None or base is model or not prefix:
        raise UserError(
            f"{type(model).__name__}: cannot find the pretrained encoder (no base_model). "
            "Use strategy=full for this architecture."
        )
    stack_name, stack, shared = inspect_layer_stack(model)
    full = lambda local: f"{prefix}.{local}"  # noqa: E731
    layers = [[full(f"{stack_name}.{i}.{n}") for n, _ in block.named_parameters()] for i, block in enumerate(stack)]
    embeddings = [full(f"embeddings.{n}") for n, _ in base.embeddings.named_parameters()]
    pooler = pooler_parameters(model)
    names = [n for n, _ in model.named_parameters()]
    head = [n for n in names if not n.startswith(prefix + ".") or n in pooler]
    # the blocks of a model whose layers share weights are used by every layer: they count with ``other``
    in_layers = set() if shared else {n for layer in layers for n in layer}
    taken = in_layers | set(embeddings) | set(head)
    other = [n for n in names if n not in taken]
    return EncoderParts(
        embeddings=embeddings, layers=SharedLayers(shared) if shared else layers, other=other, head=head, pooler=pooler
    )
