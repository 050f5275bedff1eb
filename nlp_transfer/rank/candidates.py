"""Candidate source models for ``nlp-transfer rank``, and the frozen features each one gives a task.

A candidate is a model (Hub id or folder) and, optionally, a variant of it, written
``MODEL@key=value+key=value``:

- ``layer``: which hidden state the features come from: ``0`` is the embeddings, ``1`` the first layer's
  output, and so on; ``mean`` averages the outputs of every layer, each first scaled to the same spread over
  the sample (:func:`balanced_layer_mean`). Default: the last layer.
- ``pooling``: for sequence tasks, ``cls`` (the first token's state) or ``mean`` (the average over tokens).
  Default: the run's ``transfer.pooling``.
- ``depth``: keep only the bottom K layers (``transfer.depth``); the features come from the K-th layer.
- ``init``: ``random`` re-initialises the weights (a control every real model should beat).

An empty model part (``@depth=3``) means the run's own ``model``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlp_transfer.errors import UserError
from nlp_transfer.models import load_pretrained, resolve_with_tokenizer
from nlp_transfer.tasks.windows import DOCUMENT_COLUMN, document_labels, pool_windows
from nlp_transfer.training.batches import LengthSortedBatches, inference_token_budget
from nlp_transfer.transfer.depth import encoder_depth, keep_bottom_layers
from nlp_transfer.transfer.feature_extraction import pool
from nlp_transfer.transfer.layers import find_layer_stack, inspect_layer_stack

VARIANT_KEYS = ("layer", "pooling", "depth", "init")


@dataclass(frozen=True)
class Candidate:
    """One model, or one variant of a model, to score."""

    model: str
    layer: int | str | None = None
    pooling: str = "cls"
    depth: int | None = None
    init: str = "pretrained"

    @property
    def name(self) -> str:
        """The candidate as written on the command line (defaults left out)."""
        parts = [f"layer={self.layer}"] if self.layer is not None else []
        parts += [f"pooling={self.pooling}"] if self.pooling != "cls" else []
        parts += [f"depth={self.depth}"] if self.depth is not None else []
        parts += [f"init={self.init}"] if self.init != "pretrained" else []
        return self.model + ("@" + "+".join(parts) if parts else "")


def parse_candidate(spec: str, *, default_model: str, default_pooling: str = "cls") -> Candidate:
    """``MODEL@key=value+key=value`` as a :class:`Candidate`; a bad key or value is a one-line error."""
    model, _, variant = spec.strip().partition("@")
    values: dict[str, Any] = {"model": model.strip() or default_model, "pooling": default_pooling}
    for item in filter(None, variant.split("+")):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in VARIANT_KEYS:
            raise UserError(
                f"candidate '{spec}': '{item}' is not a variant; write MODEL@key=value+key=value with keys {', '.join(VARIANT_KEYS)}."
            )
        values[key] = _variant_value(spec, key, value)
    return Candidate(**values)


def _variant_value(spec: str, key: str, value: str) -> int | str:
    """The typed value of one variant key."""
    choices = {"pooling": ("cls", "mean"), "init": ("pretrained", "random")}
    if key in choices:
        if value not in choices[key]:
            raise UserError(f"candidate '{spec}': {key}={value} is unknown; choose {' or '.join(choices[key])}.")
        return value
    if key == "layer" and value == "mean":
        return value
    if not value.isdigit() or (key == "depth" and int(value) < 1):
        lowest = 1 if key == "depth" else 0
        raise UserError(
            f"candidate '{spec}': {key}={value} must be a whole number from {lowest}" + (" or mean." if key == "layer" else ".")
        )
    return int(value)


def parse_candidates(specs: str, *, default_model: str, default_pooling: str = "cls") -> list[Candidate]:
    """Comma-separated candidate specs; at least one, none twice."""
    candidates = [
        parse_candidate(s, default_model=default_model, default_pooling=default_pooling) for s in specs.split(",") if s.strip()
    ]
    if not candidates:
        raise UserError(
            "--models names no candidate; give comma-separated Hub ids or folders, e.g. --models MODEL,MODEL@depth=3."
        )
    seen: set[Candidate] = set()
    for candidate in candidates:
        if candidate in seen:
            raise UserError(f"--models: candidate '{candidate.name}' is given twice; remove one.")
        seen.add(candidate)
    return candidates


#: config.json keys that give an encoder's layer count, in the order they are tried
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")


def declared_layers(path: str) -> int | None:
    """The layer count that the model folder ``path`` declares in its config.json (None when it says none)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    counts = [config.get(key) for key in LAYER_COUNT_KEYS] if isinstance(config, dict) else []
    return next((c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c > 0), None)


def features_key(candidate: Candidate, path: str, *, token_level: bool = False) -> tuple[Any, ...]:
    """What decides a candidate's row, with defaults spelled out: two candidates with one key would give one row.

    ``path`` is the model's resolved folder (so ``./m``, ``m/`` and the config's ``model`` meet); a depth equal to
    the model's layer count is no depth, a layer equal to the last layer kept is no layer, and token-level (NER)
    features ignore the pooling. Without a layer count in the model's config.json those are compared as written.
    """
    layers = declared_layers(path)
    depth = None if candidate.depth is not None and candidate.depth == layers else candidate.depth
    top = depth if depth is not None else layers
    layer = None if top is not None and candidate.layer == top else candidate.layer
    pooling = None if token_level else candidate.pooling
    return (str(Path(path).expanduser().resolve()), candidate.init, pooling, depth, layer)


@dataclass
class CandidateFeatures:
    """A candidate's frozen features of the ranking sample, their labels, and what they cost."""

    features: np.ndarray
    labels: np.ndarray
    encode_seconds: float
    parameters: int
    layers: int
    #: how many candidates one encoding pass served (its seconds are shared equally among them)
    shared_by: int = 1


def load_encoder(candidate: Candidate, task: Any, *, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """The candidate's bare encoder (``AutoModel``, depth applied) and a copy of ``task`` with its tokenizer."""
    from transformers import AutoConfig, AutoModel

    resolved, tokenizer = resolve_with_tokenizer(candidate.model, trust_remote_code=task.trust_remote_code)
    own_task = dataclasses.replace(
        task, model_path=resolved.path, tokenizer=tokenizer, model_name=resolved.name, model_source=resolved.source, truncated={}
    )
    if candidate.init == "random":
        torch.manual_seed(seed)
        config = AutoConfig.from_pretrained(resolved.path, trust_remote_code=task.trust_remote_code)
        model = AutoModel.from_config(config, trust_remote_code=task.trust_remote_code)
    else:
        model = load_pretrained(
            AutoModel, resolved.path, allow_pickle=task.allow_pickle, trust_remote_code=task.trust_remote_code
        )
    if candidate.depth is not None:
        keep_bottom_layers(model, candidate.depth)
    return model.eval(), own_task


def model_states(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Every hidden state of ``model`` for ``batch``: the embeddings' output, then each layer's."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    output = model(**inputs, output_hidden_states=True, return_dict=True)
    states = getattr(output, "hidden_states", None)
    if not states:
        raise UserError(f"{type(model).__name__} does not return hidden states; it cannot be ranked on its features.")
    return tuple(states)


def layer_indices(candidate: Candidate, top: int) -> list[int]:
    """The hidden states a candidate's features are made of, in a model (or its bottom ``top`` layers) whose
    hidden states are 0 (the embeddings) to ``top``: its ``layer``, every layer for ``mean``, else the last."""
    if candidate.layer is None:
        return [top]
    if candidate.layer == "mean":
        return list(range(1, top + 1))
    if not 0 <= int(candidate.layer) <= top:
        raise UserError(f"layer={candidate.layer}: the model has hidden states 0 (embeddings) to {top}; choose one of those.")
    return [int(candidate.layer)]


def balanced_layer_mean(layers: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of several layers' features (rows x width each), every layer first scaled to unit total variance.

    A plain mean is decided by the layer whose features spread the most: the last layer of a model trained with
    mean pooling, read at its first token, spreads far wider than the layers below and drowns them. Scaled,
    each layer weighs the same, whatever its spread (a layer with no spread at all is left as it is).
    """
    scaled = []
    for features in layers:
        spread = float(np.sqrt(features.var(axis=0, dtype=np.float64).sum()))
        scaled.append(features / spread if spread > 0 else features)
    return np.mean(scaled, axis=0, dtype=np.float64).astype(np.float32)


def hidden_state(model: torch.nn.Module, batch: dict[str, torch.Tensor], layer: int | None) -> torch.Tensor:
    """The token states (batch, tokens, width) at hidden state ``layer`` (0: the embeddings), or the last."""
    states = model_states(model, batch)
    return states[-1 if layer is None else layer]


def _encode_variants(
    model: torch.nn.Module,
    own_task: Any,
    candidates: Sequence[Candidate],
    tops: Sequence[int],
    sample: Any,
    *,
    batch_size: int,
    device: Any,
    check: Callable[[dict[str, torch.Tensor], Sequence[torch.Tensor]], None] | None = None,
) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Each candidate's features of ``sample`` from one pass of ``model``, their labels and the pass's seconds.

    The pass keeps every distinct (hidden state, pooling) the candidates read once; a ``layer=mean`` candidate is
    then the :func:`balanced_layer_mean` of its layers over the whole sample. ``check`` sees the first batch.
    """
    token_level = "tags" in sample.column_names
    wanted = [
        [(index, None if token_level else c.pooling) for index in layer_indices(c, top)]
        for c, top in zip(candidates, tops, strict=True)
    ]
    blocks = list(dict.fromkeys(key for keys in wanted for key in keys))

    checked: list[bool] = []

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = model_states(model, batch)
        if check is not None and not checked:
            check(batch, states)
            checked.append(True)
        mask = batch.get("attention_mask")
        parts = [states[i].float() if p is None else pool(states[i].float(), mask, p) for i, p in blocks]
        return torch.cat(parts, dim=-1)

    outputs, labels, seconds = _features_of_sample(forward, own_task, sample, batch_size=batch_size, device=device)
    by_block = dict(zip(blocks, np.split(outputs, len(blocks), axis=-1), strict=True))
    features = [
        balanced_layer_mean([by_block[k] for k in keys]) if c.layer == "mean" else by_block[keys[0]]
        for c, keys in zip(candidates, wanted, strict=True)
    ]
    return features, labels, seconds


def encode_candidate(
    candidate: Candidate, task: Any, sample: Any, *, batch_size: int = 64, device: torch.device | str = "cpu", seed: int = 0
) -> CandidateFeatures:
    """The candidate's frozen features of ``sample`` (a split of the run's data) and their labels.

    Sequence tasks give one pooled vector per text; NER gives one vector per word (its first piece) with
    the word's tag id. Multi-label labels come back as a 0/1 matrix.
    """
    model, own_task = load_encoder(candidate, task, seed=seed)
    model.to(device)
    top = encoder_depth(model)
    (features,), labels, seconds = _encode_variants(
        model, own_task, [candidate], [top], sample, batch_size=batch_size, device=device
    )
    parameters = sum(p.numel() for p in model.parameters())
    return CandidateFeatures(features, labels, seconds, parameters, top)


class SharedEncodingMismatch(Exception):
    """The model cut to K layers does not output its K-th hidden state (a norm after the stack, say): encode apart."""


def encode_shared(
    candidates: Sequence[Candidate],
    task: Any,
    sample: Any,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> list[CandidateFeatures]:
    """The features of several variants of one model (same ``model`` and ``init``) from one pass over ``sample``.

    Every variant reads the whole model's hidden states: a ``depth=K`` variant takes the K-th, which is what
    the model cut to its bottom K layers outputs when nothing follows the layer stack. That is checked on the
    first batch for every depth asked for (the model is cut and run once); where it does not hold this raises
    :class:`SharedEncodingMismatch` and the caller encodes the variants one by one. Each variant is charged an
    equal share of the pass's seconds.
    """
    first = candidates[0]
    if any((c.model, c.init) != (first.model, first.init) for c in candidates):
        raise ValueError("encode_shared needs variants of one model with one init")
    model, own_task = load_encoder(Candidate(first.model, init=first.init), task, seed=seed)
    model.to(device)
    full = encoder_depth(model)
    tops = [full if c.depth is None else c.depth for c in candidates]
    if max(tops) > full:
        raise UserError(f"depth={max(tops)}: the model has {full} encoder layers; choose a depth from 1 to {full}.")
    cut_depths = sorted(set(tops) - {full})
    features, labels, seconds = _encode_variants(
        model,
        own_task,
        candidates,
        tops,
        sample,
        batch_size=batch_size,
        device=device,
        check=lambda batch, states: _check_cut_outputs(model, batch, states, cut_depths),
    )
    total = sum(p.numel() for p in model.parameters())
    _, stack, _ = inspect_layer_stack(model)  # shared layers (ALBERT) are never cut: every variant keeps them all
    return [
        CandidateFeatures(
            part,
            labels,
            round(seconds / len(candidates), 2),
            total - sum(p.numel() for layer in stack[top:] for p in layer.parameters()),
            top,
            shared_by=len(candidates),
        )
        for part, top in zip(features, tops, strict=True)
    ]


def _check_cut_outputs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], states: Sequence[torch.Tensor], depths: list[int]
) -> None:
    """Raise :class:`SharedEncodingMismatch` unless the model cut to each depth K outputs ``states[K]``."""
    _, stack = find_layer_stack(model)
    for depth in depths:
        removed = list(stack[depth:])
        del stack[depth:]
        try:
            cut = model_states(model, batch)[-1]
        finally:
            stack.extend(removed)
        if not torch.allclose(cut.float(), states[depth].float(), rtol=1e-4, atol=1e-4):
            raise SharedEncodingMismatch(f"the model cut to {depth} layers does not output its hidden state {depth}")


def _features_of_sample(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor], task: Any, sample: Any, *, batch_size: int, device: Any
) -> tuple[np.ndarray, np.ndarray, float]:
    """``forward``'s features of every row of ``sample`` with their labels, and the seconds it took.

    NER keeps one row per word (its first piece); a windows run averages each text's windows into one row.
    """
    started = time.perf_counter()
    tokenized = task.preprocess(sample, "rank")
    rows = tokenized.select_columns([c for c in tokenized.column_names if c in task.batch_columns]).to_list()
    batches = LengthSortedBatches.build(rows, task.collator(), batch_size, max_tokens=inference_token_budget(device))
    if "tags" in sample.column_names:  # one row per labelled word, never padded to the longest sentence
        outputs, labels = batches.labelled_token_outputs(forward, device=device)
        return outputs, labels.astype(np.int64), round(time.perf_counter() - started, 2)
    outputs, labels = batches.outputs(forward, device=device)  # under inference_mode
    if labels is None:
        raise UserError("the ranking sample has no labels; rank needs the run's labelled training data (data.train_file).")
    if DOCUMENT_COLUMN in tokenized.column_names:  # a windows run: one feature row per text, its windows' mean
        documents = tokenized[DOCUMENT_COLUMN]
        outputs = pool_windows(outputs, documents, len(sample), "mean")
        labels = document_labels(labels, documents, len(sample))
    return outputs, labels.astype(np.int64), round(time.perf_counter() - started, 2)
