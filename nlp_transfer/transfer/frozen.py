"""Feature extraction: the pretrained encoder is frozen and only the task head trains.

The pooler (BERT's and ALBERT's dense+tanh over [CLS], DeBERTa's ContextPooler) counts as head unless
``transfer.freeze_pooler``, which a model without a pooler (RoBERTa, ELECTRA, DistilBERT, ...) refuses. The
encoder stays in eval mode (no dropout), so its output for a text never changes: for sequence tasks,
with ``transfer.cache_features`` (the default), it runs once per split and the head trains on the
cached vectors for every epoch (:mod:`nlp_transfer.transfer.feature_extraction`). ``transfer.pooling``
chooses what the head reads: the first token (``cls``) or the mean of the token states (``mean``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nlp_transfer.config import RunConfig
from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.base import Strategy, TrainingRun, register_strategy
from nlp_transfer.transfer.feature_extraction import (
    CachedFeatureHead,
    CachedFeatureTask,
    encode_features,
    head_modules,
    keep_encoder_in_eval,
    unwrap_pooling,
    with_pooling,
)
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups, set_trainable
from nlp_transfer.transfer.layers import find_encoder_parts
from nlp_transfer.transfer.logistic_head import check_head_fits, fit_logistic_head

if TYPE_CHECKING:
    from nlp_transfer.training.loop import FitResult

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@register_strategy
class FrozenEncoder(Strategy):
    """Only the head trains, on the frozen encoder's outputs (cached once per split for sequence tasks)."""

    name = "frozen"
    trains_embeddings = False
    uses_layer_lr_decay = False
    pools_tokens = True
    reads_freeze_pooler = True
    own_options = frozenset({"cache_features", "head_fit", "head_c"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.caches = False
        self.encoding_seconds: dict[str, float] = {}

    def check(self, config: RunConfig) -> None:
        """Feature caching is an option of sequence tasks."""
        super().check(config)
        self.caches = config.task != "ner" and config.transfer.cache_features

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """``model``, or for mean pooling a wrapper whose head reads the mean of the token states."""
        check_head_fits(model, self.options.head_fit if self.caches else "steps")
        if self.caches:
            head_modules(model)  # a head the cached features cannot feed is refused before anything is encoded
        return with_pooling(super().prepare_model(model), self.options.pooling)

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """The head (and the pooler unless ``freeze_pooler``); the encoder is frozen and kept in eval mode."""
        inner = unwrap_pooling(model)
        parts = find_encoder_parts(inner)
        head = set(parts.head)
        if self.options.freeze_pooler:
            if not parts.pooler:
                raise ConfigError(
                    f"transfer.freeze_pooler=true: {type(inner).__name__} has no pooler (its head reads the encoder "
                    "directly), so there is nothing to freeze; remove transfer.freeze_pooler."
                )
            head -= set(parts.pooler)
        set_trainable(inner, head)
        keep_encoder_in_eval(inner)
        names = [n for n, _ in inner.named_parameters() if n in head]
        return layerwise_groups(inner, names, learning_rate=learning_rate, weight_decay=weight_decay)

    def train(self, run: TrainingRun) -> FitResult:
        """Encode train and validation once, then train the head on the cached vectors (or the standard loop)."""
        if not self.caches:
            return run.fit()
        return train_head_on_features(run, self.options.pooling, self.encoding_seconds)

    def run_info(self) -> dict[str, Any]:
        """Pooling, whether features were cached, and the encoding time per split."""
        return {
            "pooling": self.options.pooling,
            "cached_features": self.caches,
            # train's encoding counts as training time, validation's as evaluation
            "feature_encoding_seconds": self.encoding_seconds,
            "head_fit": self.options.head_fit if self.caches else "steps",
        }


def train_head_on_features(run: TrainingRun, pooling: str, encoding_seconds: dict[str, float]) -> FitResult:
    """Encode train and validation once with the (frozen) encoder, then train the model's head on the cached vectors.

    ``encoding_seconds`` receives the time each split took to encode; train's counts as training time.
    The best head is loaded into ``run.model`` (the head's weights are the model's own).
    """
    inner = unwrap_pooling(run.model).to(run.accelerator.device)  # encode where the loop will train
    features = {name: encode_split(inner, run, name, pooling, encoding_seconds) for name in ("train", "validation")}
    run.accelerator.print(
        f"feature extraction: encoded {sum(len(f) for f in features.values()):,} texts once "
        f"({sum(encoding_seconds.values()):.1f} s); the head trains on the cached vectors"
    )
    cached = CachedFeatureTask(run.task, features)
    if run.config.transfer.head_fit == "logistic":
        return solve_head(run, inner, cached, encoding_seconds)
    result = run.fit(
        model=CachedFeatureHead(inner),
        task=cached,
        train_dataset=cached.dataset(run.splits["train"], "train"),
        eval_dataset=cached.dataset(run.splits["validation"], "validation"),
        training=replace(run.config.training, gradient_checkpointing=False),
    )
    result.model = run.model
    result.train_seconds += encoding_seconds["train"]
    return result


def solve_head(run: TrainingRun, inner: nn.Module, cached: CachedFeatureTask, encoding_seconds: dict[str, float]) -> FitResult:
    """``transfer.head_fit=logistic``: the head fitted in one convex solve, then scored once on validation.

    There are no optimizer steps, so no checkpoints: a resumed run solves again (the same weights).
    """
    from nlp_transfer.evaluation.metrics import scalar_metrics
    from nlp_transfer.training.evaluation import evaluate_model
    from nlp_transfer.training.loop import FitResult, selection_metric, selection_value

    options, training = run.config.transfer, run.config.training
    multi_label = bool(getattr(run.task, "multi_label", False))
    labels = torch.tensor(run.splits["train"]["labels"][:], dtype=torch.float32 if multi_label else torch.long)
    seconds = fit_logistic_head(inner, cached.features_by_split["train"], labels, options.head_c, multi_label, run.accelerator)
    run.accelerator.print(f"head: logistic regression fitted to convergence in {seconds:.2f} s (C={options.head_c})")
    validation = cached.dataset(run.splits["validation"], "validation")
    metrics = evaluate_model(CachedFeatureHead(inner), validation, cached, run.accelerator, training.eval_batch_size)
    metric_name = selection_metric(training, cached)
    return FitResult(
        model=run.model,
        best_metric=selection_value(metrics, metric_name),
        best_step=0,
        metric_name=metric_name,
        history=[{"epoch": 0, "step": 0, **scalar_metrics(metrics)}],
        train_seconds=encoding_seconds["train"] + seconds,
        best_validation=metrics,
    )


def encode_split(model: nn.Module, run: TrainingRun, split: str, pooling: str, seconds: dict[str, float]) -> torch.Tensor:
    """The pooled encoder outputs of one split of ``run``; the time it took goes to ``seconds[split]``."""
    started = time.perf_counter()
    dataset = run.splits[split]
    features = encode_features(
        model,
        dataset.select_columns([c for c in dataset.column_names if c in run.task.batch_columns]).to_list(),
        run.task.collator(),
        pooling=pooling,
        batch_size=run.config.training.eval_batch_size,
        device=run.accelerator.device,
        autocast_dtype=AUTOCAST_DTYPES.get(run.config.training.mixed_precision),
    )
    seconds[split] = round(time.perf_counter() - started, 2)
    return features
