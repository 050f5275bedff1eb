"""Dropout masks drawn fast on a CPU (``training.fast_dropout_masks``).

On a CPU, torch draws a dropout mask with ``bernoulli_``: about 6 ns an element on a 2-core machine, 7 % of a
training step of the default model on SST-2 (``benchmarks/step_profile.py``), more on long texts, where the
attention masks (batch x heads x length x length) dominate. Here the masks come from numpy's PCG64 generator as
16-bit integers (four to each raw 64-bit draw) compared with a threshold, about 1.2 ns an element with
the scaling, and the step multiplies by them as torch's
dropout does (``x * mask / (1 - p)``, the mask kept for the backward pass).

What changes is the random stream, not the computation: the keep probability is ``1 - p`` rounded to a multiple of
1/65,536 (0.89999 for ``p = 0.1``), the scale ``1 / (1 - p)`` as torch's. A batch's masks are a function of the seed,
the process, the epoch and the batch alone (:meth:`MaskSource.start_batch` re-seeds the generator for each batch), so
a run is reproducible from its seed and an interrupted run resumes with the very masks it would have drawn, with no
generator state to checkpoint.

:func:`fast_dropout` routes a model's ``nn.Dropout`` modules through a :class:`MaskSource`, and, for attention that
transformers runs through SDPA (BERT, RoBERTa, DistilBERT, ELECTRA and most encoders), computes the attention of
the model's layers in training as its eager implementation does (scores, softmax, dropout, product), with the
fast masks, since SDPA draws its own inside the kernel. The last layer computed at the first position alone
(:mod:`nlp_transfer.training.first_position`) draws from the same source, and gradient checkpointing replays a
segment's masks when it recomputes it (:meth:`MaskSource.checkpoint_contexts`). The loop uses it on CPUs, without
``torch.compile`` (whose graphs would break at every mask).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

#: the attribute that marks a module of a model whose masks come from a source, and holds it
SOURCE_ATTRIBUTE = "_nlp_transfer_masks"
_LEVELS = 1 << 16


class MaskSource:
    """Scaled dropout masks from a generator re-seeded for every batch by ``(seed, process, epoch, batch)``."""

    def __init__(self, seed: int, process_index: int = 0) -> None:
        self.seed = seed
        self.process_index = process_index
        self.generator = np.random.Generator(np.random.PCG64([seed, process_index, 0, 0]))

    def start_batch(self, epoch: int, batch: int) -> None:
        """Draw the masks of batch ``batch`` of epoch ``epoch`` from here on (called before its forward pass)."""
        self.generator = np.random.Generator(np.random.PCG64([self.seed, self.process_index, epoch, batch]))

    def checkpoint_contexts(self) -> tuple[AbstractContextManager, AbstractContextManager]:
        """torch.utils.checkpoint's ``context_fn``: a recomputed segment draws the masks its forward pass drew.

        The forward context notes where the generator stood when the segment began; the recompute context (in the
        backward pass) puts it back there for the segment, then returns it to where it was, as torch does with its
        own random state, so gradient checkpointing leaves the run as it was.
        """
        began: dict[str, Any] = {}

        @contextmanager
        def forward() -> Iterator[None]:
            began["state"] = self.generator.bit_generator.state
            yield

        @contextmanager
        def recompute() -> Iterator[None]:
            live = self.generator.bit_generator.state
            self.generator.bit_generator.state = began["state"]
            try:
                yield
            finally:
                self.generator.bit_generator.state = live

        return forward(), recompute()

    def noise(self, shape: tuple[int, ...] | torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
        """A tensor of ``shape``: ``1 / (1 - p)`` where an element is kept, 0 where it is dropped (probability ``p``)."""
        count = int(np.prod(shape))
        draws = self.generator.bit_generator.random_raw((count + 3) // 4).view(np.uint16)[:count]
        # as bytes: torch converts uint8 to float several times faster than bool (same values, 0 and 1)
        kept = torch.from_numpy((draws < keep_threshold(p)).view(np.uint8)).view(shape)
        return kept.to(dtype).mul_(1.0 / (1.0 - p))

    def dropout(self, inputs: torch.Tensor, p: float) -> torch.Tensor:
        """``inputs`` with each element zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``."""
        if p == 0:
            return inputs
        return inputs * self.noise(inputs.shape, p, inputs.dtype)


def keep_threshold(p: float) -> int:
    """The 16-bit draws below this value keep their element: ``(1 - p) * 65536``, rounded."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return round((1.0 - p) * _LEVELS)


def _dropout_forward(module: nn.Dropout, inputs: torch.Tensor) -> torch.Tensor:
    """An ``nn.Dropout``'s forward with the masks of the source it carries."""
    if not module.training or module.p == 0:
        return inputs
    return masks_of(module).dropout(inputs, module.p)


def eager_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
    dropout: float,
    drop: Callable[[torch.Tensor, float], torch.Tensor],
) -> torch.Tensor:
    """Attention as transformers' eager implementation computes it, with ``drop`` as the probabilities' dropout.

    ``attention_mask`` as SDPA takes it: boolean (True: attend) or additive. Returns batch x length x heads x head
    size, as transformers' SDPA wrapper does (the first-position layer computes its one query with it too).
    """
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(drop(probabilities, dropout), value)
    return output.transpose(1, 2).contiguous()


def _attention_with_masks(sdpa: Callable[..., Any]) -> Callable[..., Any]:
    """transformers' SDPA attention function, computed eagerly with a source's masks where a module carries one.

    Only attention that is not causal, in training with dropout, without grouped keys, a position bias or a
    softcap; everything else goes to ``sdpa`` unchanged. Other keyword arguments are ones SDPA ignores too.
    """

    def attention(module: nn.Module, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
        source = masks_of(module)
        dropout = kwargs.get("dropout", 0.0)
        causal = kwargs.get("is_causal")
        causal = getattr(module, "is_causal", True) if causal is None else causal
        plain = (
            source is not None
            and module.training
            and dropout > 0
            and not causal
            and getattr(module, "num_key_value_groups", 1) == 1
            and kwargs.get("position_bias") is None
            and kwargs.get("softcap") is None
        )
        if not plain:
            return sdpa(module, query, key, value, attention_mask, **kwargs)
        return eager_attention(query, key, value, attention_mask, kwargs.get("scaling"), dropout, source.dropout), None

    return attention


@contextmanager
def fast_dropout(model: nn.Module, source: MaskSource | None) -> Iterator[bool]:
    """Within the block, ``model``'s dropout draws its masks from ``source``; yields whether anything was routed.

    ``source`` None (or a model without dropout, or one already routed) leaves everything as it is. On exit the
    modules' own forwards and transformers' SDPA attention function come back.
    """
    modules = list(model.modules())
    dropouts = [m for m in modules if isinstance(m, nn.Dropout) and "forward" not in vars(m)]
    if source is None or not dropouts or any(hasattr(m, SOURCE_ATTRIBUTE) for m in modules):
        yield False
        return
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    for module in modules:
        setattr(module, SOURCE_ATTRIBUTE, source)
    for module in dropouts:
        module.forward = _dropout_forward.__get__(module)
    overridden = dict(ALL_ATTENTION_FUNCTIONS._local_mapping)
    ALL_ATTENTION_FUNCTIONS["sdpa"] = _attention_with_masks(ALL_ATTENTION_FUNCTIONS["sdpa"])
    try:
        yield True
    finally:
        ALL_ATTENTION_FUNCTIONS._local_mapping.clear()
        ALL_ATTENTION_FUNCTIONS._local_mapping.update(overridden)
        for module in dropouts:
            del module.forward
        for module in modules:
            delattr(module, SOURCE_ATTRIBUTE)


def masks_of(module: nn.Module) -> MaskSource | None:
    """The source ``module``'s masks come from inside :func:`fast_dropout`; None outside it."""
    return getattr(module, SOURCE_ATTRIBUTE, None)
