"""Feature extraction: run the frozen encoder once, cache its pooled outputs, train only the head on them.

With ``strategy=frozen`` the encoder never changes, so its output for a text is the same every epoch.
:func:`encode_features` computes it once per split (inference mode, length-grouped batches) and
:class:`CachedFeatureHead` trains the model's own head on the cached vectors. The head's parameters
are the model's, so the trained model is the usual Hugging Face model and saves as one.

Pooling turns token states into one vector per text:

- ``cls``: the first token's state, which is what every Hugging Face sequence-classification head
  reads, so the saved model gives the same predictions through ``transformers.pipeline``.
- ``mean``: the average over the text's tokens (padding excluded), the pooling sentence-embedding
  models such as all-MiniLM-L6-v2 are trained with. The model's head reads the mean instead of the
  first token, through :class:`MeanPooledModel`; ``config.json`` records it under
  :data:`POOLING_KEY` and nlp-transfer's ``load_run`` rebuilds the wrapper.

The head of each architecture is reached through its standard attributes (BERT/DeBERTa ``pooler``, ALBERT's
``pooler`` with its ``pooler_activation``, DistilBERT ``pre_classifier``, RoBERTa/ELECTRA/MPNet ``classifier`` over
the sequence); another layout is refused before training with an error that says to use ``strategy=full``;
:func:`head_logits` fed the full sequence reproduces the model's own logits (tested per architecture).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.training.batches import LengthSortedBatches, inference_token_budget

POOLING_KEY = "nlp_transfer_pooling"
POOLINGS = ("cls", "mean")


class FirstPositionPooler(nn.Module):
    """A pooler kept as a bare dense layer with its activation beside it (ALBERT's ``pooler`` and
    ``pooler_activation``): reads position 0, then the dense layer, then the activation, as the model's forward does."""

    def __init__(self, dense: nn.Linear, activation: nn.Module) -> None:
        super().__init__()
        self.dense = dense
        self.activation = activation

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pooled vector (batch, width) of token states ``hidden`` (batch, tokens, width)."""
        return self.activation(self.dense(hidden[:, 0]))


def _unknown_head(model: nn.Module, what: str) -> UserError:
    """The error for a sequence-classification head whose layout is not known here."""
    return UserError(
        f"{type(model).__name__}: {what}, so its head cannot be trained on cached or mean-pooled encoder outputs "
        "(strategy=frozen or contrastive, transfer.pooling=mean); use strategy=full with transfer.pooling=cls."
    )


def head_modules(model: PreTrainedModel) -> dict[str, nn.Module]:
    """The modules of ``model``'s sequence-classification head, by role: ``pre_classifier`` (DistilBERT),
    ``pooler`` (BERT's and ALBERT's inside the encoder, DeBERTa's beside it), ``dropout`` and ``classifier``.

    A head laid out otherwise raises a UserError that says to use ``strategy=full``.
    """
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Module):
        raise _unknown_head(model, "no classifier module found")
    if getattr(model, "pre_classifier", None) is not None:  # DistilBERT: dense + ReLU + dropout over [CLS]
        return {"pre_classifier": model.pre_classifier, "dropout": model.dropout, "classifier": classifier}
    pooler = getattr(model, "pooler", None)
    if pooler is None:
        pooler = getattr(model.base_model, "pooler", None)
    if isinstance(pooler, nn.Linear):  # ALBERT: the dense layer alone; the encoder applies it to position 0, then tanh
        activation = getattr(model.base_model, "pooler_activation", None)
        if not isinstance(activation, nn.Module):
            raise _unknown_head(model, "its pooler is a bare linear layer with no pooler_activation beside it")
        pooler = FirstPositionPooler(pooler, activation)
    if pooler is not None:  # BERT (dense+tanh inside the encoder), DeBERTa (ContextPooler beside it), ALBERT (wrapped)
        return {"pooler": pooler, "dropout": model.dropout, "classifier": classifier}
    return {"classifier": classifier}  # RoBERTa, ELECTRA, MPNet: the head pools the first token itself


def logits_of_head(head: dict[str, nn.Module] | nn.ModuleDict, hidden: torch.Tensor) -> torch.Tensor:
    """The logits (batch, labels) of the head modules ``head`` (:func:`head_modules`) for token states ``hidden``."""
    if "pre_classifier" in head:
        logits = head["classifier"](head["dropout"](torch.relu(head["pre_classifier"](hidden[:, 0]))))
    elif "pooler" in head:
        logits = head["classifier"](head["dropout"](head["pooler"](hidden)))
    else:
        logits = head["classifier"](hidden)
    if logits.dim() != 2:  # a head that does not pool the first position itself: its logits would be per token
        raise UserError(
            f"the model's head gave logits of shape {tuple(logits.shape)} for one vector per text, not (texts, labels): "
            "its layout is not known here; use strategy=full with transfer.pooling=cls."
        )
    return logits


def head_logits(model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The logits ``model``'s sequence-classification head gives for token states ``hidden`` (batch, tokens, width).

    Like the model's own forward, the head reads the first position; pass ``pooled[:, None]`` to feed it
    any one vector per text.
    """
    return logits_of_head(head_modules(model), hidden)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """One vector per text (batch, width): the first token's state, or the mean over non-padding tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        if attention_mask is None:
            return hidden.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    raise ConfigError(f"transfer.pooling={pooling!r} is unknown; choose one of {', '.join(POOLINGS)}.")


def encoder_states(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The encoder's last hidden states for a tokenized batch (the task head does not run)."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return model.base_model(**inputs).last_hidden_state


class MeanPooledModel(nn.Module):
    """A sequence-classification model whose head reads the mean of the token states instead of the first token.

    It holds the Hugging Face model (``self.model``) and saves as it, adding :data:`POOLING_KEY` to its config.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    @property
    def device(self) -> torch.device:
        """The device of the wrapped model."""
        return self.model.device

    def forward(self, labels: torch.Tensor | None = None, **batch: torch.Tensor) -> SequenceClassifierOutput:
        """Logits from the mean-pooled encoder output (``labels`` are accepted and ignored: the task computes the loss)."""
        hidden = encoder_states(self.model, batch)
        pooled = pool(hidden, batch.get("attention_mask"), "mean")
        return SequenceClassifierOutput(logits=head_logits(self.model, pooled[:, None]))

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Recompute the wrapped model's activations in the backward pass (``training.gradient_checkpointing``)."""
        self.model.gradient_checkpointing_enable(**kwargs)

    def save_pretrained(self, output_dir: Any, **kwargs: Any) -> None:
        """Save the wrapped model with ``save_pretrained``; its config records mean pooling."""
        self.model.config.update({POOLING_KEY: "mean"})
        self.model.save_pretrained(output_dir, **kwargs)


def with_pooling(model: PreTrainedModel, pooling: str) -> nn.Module:
    """``model`` itself for cls pooling (the Hugging Face heads' own), or :class:`MeanPooledModel` for mean."""
    pool(torch.zeros(1, 1, 1), None, pooling)  # rejects an unknown pooling with the config key in the message
    if pooling != "mean":
        return model
    head_modules(model)  # a head this module cannot reproduce is refused now, not after training
    return MeanPooledModel(model)


def unwrap_pooling(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside a :class:`MeanPooledModel` (or ``model`` itself)."""
    return model.model if isinstance(model, MeanPooledModel) else model


class CachedFeatureHead(nn.Module):
    """The head of ``model`` over cached pooled features: ``forward(features=...)`` gives the model's logits.

    It holds the head's modules only (:func:`head_modules`, shared with ``model``), so training it trains the
    model's head, and its state dict, which every checkpoint and best-model snapshot writes, is the head's few
    weights (``head.classifier.weight``, ...) rather than the whole frozen encoder again.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.head = nn.ModuleDict(head_modules(model))

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        """Logits of the head on ``features`` (batch, width)."""
        return SequenceClassifierOutput(logits=logits_of_head(self.head, features[:, None]))


class FrozenEncoderEval:
    """Forward pre-hook that keeps the frozen encoder in eval mode (no dropout) while the head trains.

    A frozen encoder is a fixed feature extractor: with its dropout off, training on its outputs gives the
    same head whether those outputs are recomputed each step or cached once.
    """

    def __call__(self, module: nn.Module, args: Any) -> None:
        """Switch the encoder (and only the encoder) to eval mode before it runs."""
        if module.training:
            module.eval()


def keep_encoder_in_eval(model: PreTrainedModel) -> None:
    """Register :class:`FrozenEncoderEval` on ``model.base_model`` (once)."""
    base = model.base_model
    if not getattr(base, "_nlp_transfer_eval_hook", False):
        base.register_forward_pre_hook(FrozenEncoderEval())
        base._nlp_transfer_eval_hook = True


def encode_features(
    model: PreTrainedModel,
    rows: Sequence[dict[str, Any]],
    collator: Any,
    *,
    pooling: str,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Pooled encoder outputs (rows, width) in float32, in row order; batches are formed by length.

    ``rows`` are tokenized examples (``input_ids``, ``attention_mask``, ...). The encoder runs in eval
    mode on ``device`` (where ``model`` must be); ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs it under autocast.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            hidden = encoder_states(model, batch)
        return pool(hidden.float(), batch.get("attention_mask"), pooling)

    inputs = [{k: v for k, v in row.items() if k != "labels"} for row in rows]
    batches = LengthSortedBatches.build(inputs, collator, batch_size, max_tokens=inference_token_budget(device))
    features, _ = batches.outputs(forward, device=device)
    model.train(was_training)
    if not len(features):
        return torch.empty(0, model.config.hidden_size, dtype=torch.float32)
    return torch.from_numpy(features)


class CachedFeatureCollator:
    """Batches of cached features: rows carry ``feature_index`` (and ``labels``); the vectors come from the cache."""

    def __init__(self, features: torch.Tensor, multi_label: bool = False) -> None:
        self.features = features
        self.multi_label = multi_label

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Stack the cached vectors of ``rows`` and their labels."""
        index = torch.tensor([row["feature_index"] for row in rows])
        batch = {"features": self.features[index]}
        if "labels" in rows[0]:
            labels = [row["labels"] for row in rows]
            # class ids stay whole numbers; multi-label targets and a new task's real-valued ones stay floats
            real = self.multi_label or _real_valued(labels)
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if real else torch.long)
        return batch


def _real_valued(labels: list[Any]) -> bool:
    """Whether a batch's targets hold a float (a row's target may itself be a list)."""
    return any(isinstance(x, float) for v in labels for x in (v if isinstance(v, (list, tuple)) else [v]))


class CachedFeatureTask:
    """A task's loss and metrics over cached features (what :func:`nlp_transfer.training.fit` needs from a task)."""

    batch_columns = ("feature_index", "labels", "split")

    def __init__(self, task: Any, features_by_split: dict[str, torch.Tensor]) -> None:
        self.task = task
        self.features_by_split = features_by_split
        self.default_metric = task.default_metric
        self._collators = {
            name: CachedFeatureCollator(features, multi_label=task.multi_label) for name, features in features_by_split.items()
        }
        self._current = next(iter(features_by_split))

    def dataset(self, tokenized: Any, split: str) -> Any:
        """``tokenized`` reduced to ``feature_index``, ``labels`` and ``length`` (kept so batches match uncached training)."""
        keep = [c for c in ("labels", "length") if c in tokenized.column_names]
        data = tokenized.select_columns(keep).add_column("feature_index", list(range(len(tokenized))))
        return data.add_column("split", [split] * len(tokenized))

    def collator(self) -> Any:
        """A collator that reads each row's vector from its own split's cache."""
        collators = self._collators

        def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
            split = rows[0]["split"]
            return collators[split]([{k: v for k, v in row.items() if k != "split"} for row in rows])

        return collate

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The task's loss."""
        return self.task.loss(logits, labels)

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: Any = None) -> dict[str, Any]:
        """The task's metrics."""
        return self.task.compute_metrics(logits, labels, dataset)
