"""Contrastive few-shot training: first teach the encoder which texts belong together, then fit the head.

For few labelled examples (8 to 64 per class), in the manner of SetFit (Tunstall et al. 2022):

1. **Pairs.** The encoder trains on pairs of training texts (same label: similar, different labels:
   dissimilar), scored by the cosine of their mean-pooled embeddings (``transfer.contrastive_loss``: SetFit's
   cosine regression, a margin loss, or ``supcon``, which scores every text of a batch against all the others).
   ``transfer.contrastive_pairs`` pairs per example and epoch, exactly half of them similar, drawn on demand
   (:mod:`nlp_transfer.transfer.pairs`), so memory does not grow with the number of pairs; a text in several
   pairs of a step is encoded once (``transfer.contrastive_encode_once``). Only the encoder
   trains (its pooler and the head wait); the best encoder by ``pair_auc`` on validation pairs is kept.
2. **Head.** The encoder is frozen, train and validation are encoded once (mean pooling), and the model's
   own head trains on the cached vectors with the ``training.*`` settings, as ``strategy: frozen`` does, or with
   ``transfer.head_fit=logistic`` is fitted to convergence in one convex solve, as SetFit's logistic regression
   (:mod:`nlp_transfer.transfer.logistic_head`).
3. **End to end** (``transfer.contrastive_end_to_end_epochs``, off by default). The encoder and the fitted head
   train together on the labelled rows, validation scored every epoch: linear probing, then fine-tuning (Kumar et
   al. 2022), which starts from a head that already fits, so the first steps do not disturb the encoder. The phase
   is kept only if its best validation score beats phase 2's; otherwise phase 2's weights are restored.

Every phase runs through the standard loop, so each has progress bars, checkpoints, ``--resume`` and
multi-process runs. Phase 1 keeps its checkpoints in ``RUN_DIR/checkpoints/contrastive``, phase 3 in
``RUN_DIR/checkpoints/end_to_end``; a resumed run finishes (or reloads) phase 1 from there, continues phase 2
from ``RUN_DIR/checkpoints``, then phase 3 from its folder.

The saved run is a plain sequence-classification model whose head reads the mean of the token states
(recorded in ``config.json``, as for ``transfer.pooling=mean``): ``nlp-transfer predict`` and ``load_run``
rebuild that, and the model card's snippet (:func:`nlp_transfer.hub.usage.usage_snippet`) shows the few lines that
do it with ``transformers`` alone.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from torch import nn

from nlp_transfer.config import RunConfig
from nlp_transfer.errors import ConfigError
from nlp_transfer.training.batches import batch_rows, inference_token_budget
from nlp_transfer.training.checkpoints import checkpoint_dir, latest_checkpoint
from nlp_transfer.transfer.base import Strategy, TrainingRun, register_strategy
from nlp_transfer.transfer.feature_extraction import unwrap_pooling, with_pooling
from nlp_transfer.transfer.frozen import train_head_on_features
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups, set_trainable
from nlp_transfer.transfer.layers import find_encoder_parts
from nlp_transfer.transfer.logistic_head import check_head_fits
from nlp_transfer.transfer.pairs import (
    PairEncoder,
    PairRows,
    PairTask,
    check_pairable,
    label_sets,
    setfit_pairs_per_example,
)

if TYPE_CHECKING:
    from nlp_transfer.training.loop import FitResult

PHASE_DIR = "contrastive"
END_TO_END_DIR = "end_to_end"
#: validation texts whose pairs score the encoder in phase 1 (two pairs each: one similar, one dissimilar)
VALIDATION_ANCHORS = 256
TEXT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


@register_strategy
class ContrastiveFewShot(Strategy):
    """Phase 1 trains the encoder on similar/dissimilar pairs; phase 2 trains the head on the frozen, mean-pooled encoder;
    phase 3 (optional) trains both together."""

    name = "contrastive"
    uses_layer_lr_decay = False
    pools_tokens = True
    one_fit_of_its_groups = False  # its train() runs the pair phase before the head
    own_options = frozenset(
        {
            "contrastive_pairs",
            "contrastive_epochs",
            "contrastive_learning_rate",
            "contrastive_batch_size",
            "contrastive_loss",
            "contrastive_temperature",
            "contrastive_encode_once",
            "contrastive_end_to_end_epochs",
            "contrastive_end_to_end_learning_rate",
            "head_fit",
            "head_c",
        }
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoding_seconds: dict[str, float] = {}
        self.phase_one: dict[str, Any] = {}
        self.phase_three: dict[str, Any] = {}

    def check(self, config: RunConfig) -> None:
        """Class-labelled texts only (classification, multilabel): ner, and a task added outside the package, are refused."""
        if config.task not in ("classification", "multilabel"):
            raise ConfigError(
                "strategy=contrastive pairs whole texts by label: it serves task=classification or multilabel, not "
                f"{config.task}. Pick another strategy (full, lora) for {config.task}."
            )
        super().check(config)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """``model`` after the extensions, its head reading the mean of the token states (what phase 1 trains)."""
        check_head_fits(model, self.options.head_fit)
        return with_pooling(super().prepare_model(model), "mean")

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """The head's groups (phase 2); the encoder is marked trainable too, since phase 1 trains it."""
        inner = unwrap_pooling(model)
        for param in inner.parameters():
            param.requires_grad_(True)
        head = find_encoder_parts(inner).head
        return layerwise_groups(inner, head, learning_rate=learning_rate, weight_decay=weight_decay)

    def check_data(self, config: RunConfig, data: Any) -> None:
        """Refuse training rows that cannot form pairs before anything is written, naming the file and line."""
        split, names = data.splits["train"], list(data.labels)
        ids = [[names.index(name) for name in (label if isinstance(label, list) else [label])] for label in split["label"]]
        lines = split["line"] if "line" in split.column_names else [0] * len(ids)
        train_file = config.data.train_file or "the training data"

        def where(row: int) -> str:
            return f"{train_file}:{lines[row]}" if lines[row] else f"training row {row + 1} (made by the run)"

        check_pairable([frozenset(found) for found in ids], names, where)

    def train(self, run: TrainingRun) -> FitResult:
        """Phase 1 on pairs, then phase 2 on the cached features of the trained encoder, then (if set) phase 3."""
        inner = unwrap_pooling(run.model)
        self.train_encoder_on_pairs(run, inner)
        set_trainable(inner, set(find_encoder_parts(inner).head))  # phase 2: the encoder is frozen
        resume_head = run.resume and latest_checkpoint(run.output_dir) is not None
        result = train_head_on_features(replace(run, resume=resume_head), "mean", self.encoding_seconds)
        result.train_seconds += self.phase_one["train_seconds"]
        if self.options.contrastive_end_to_end_epochs:
            result = self.train_end_to_end(run, inner, result)
        return result

    def train_encoder_on_pairs(self, run: TrainingRun, inner: nn.Module) -> None:
        """Phase 1: the encoder (not its pooler, not the head) learns to score same-label pairs above others."""
        options, training = self.options, run.config.training
        train_rows = batch_rows(run.splits["train"], TEXT_COLUMNS)
        train_labels = run.splits["train"]["labels"][:]
        sets = label_sets(train_labels)
        check_pairable(sets, run.task.labels)
        per_example = setfit_pairs_per_example(sets) if options.contrastive_pairs == "setfit" else options.contrastive_pairs
        pairs = PairRows(train_rows, train_labels, per_example, run.config.seed)
        # pairs need labels: a multi-label validation row with none (allowed there) is left out of the pair loss
        labelled = [i for i, found in enumerate(label_sets(run.splits["validation"]["labels"][:])) if found]
        validation = run.splits["validation"].select(labelled[:VALIDATION_ANCHORS])
        validation_pairs = list(PairRows(batch_rows(validation, TEXT_COLUMNS), validation["labels"][:], 2, run.config.seed + 1))

        parts = find_encoder_parts(inner)
        encoder = [n for n, _ in inner.named_parameters() if n not in set(parts.head)]
        set_trainable(inner, set(encoder))
        groups = layerwise_groups(
            inner, encoder, learning_rate=options.contrastive_learning_rate, weight_decay=training.weight_decay
        )
        phase_dir = checkpoint_dir(run.output_dir) / PHASE_DIR
        started = time.perf_counter()
        run.accelerator.print(
            f"contrastive phase 1: {len(pairs):,} pairs ({per_example} per example, half similar), "
            f"{options.contrastive_loss} loss, {options.contrastive_epochs} epoch(s)"
        )
        result = run.fit(
            model=self.pair_encoder(run, inner),
            task=self.pair_task(run),
            param_groups=groups,
            train_dataset=pairs,
            eval_dataset=validation_pairs,
            callbacks=[],
            training=replace(
                training,
                epochs=options.contrastive_epochs,
                learning_rate=options.contrastive_learning_rate,
                batch_size=options.contrastive_batch_size,
                eval_strategy="epoch",
                metric_for_best_model="auto",
                early_stopping_patience=None,
            ),
            output_dir=phase_dir,
            resume=run.resume and latest_checkpoint(phase_dir) is not None,
        )
        self.phase_one = {
            "pairs": len(pairs),
            "pairs_per_example": per_example,
            "pairs_rule": "setfit" if options.contrastive_pairs == "setfit" else "fixed",
            "loss": options.contrastive_loss,
            "encode_once": options.contrastive_encodes_once(),
            **({"temperature": options.contrastive_temperature} if options.contrastive_loss == "supcon" else {}),
            "epochs": options.contrastive_epochs,
            "learning_rate": options.contrastive_learning_rate,
            "steps": result.global_step,
            "best_pair_auc": result.best_metric,
            "train_seconds": round(result.train_seconds, 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
        }

    def train_end_to_end(self, run: TrainingRun, inner: nn.Module, head_result: FitResult) -> FitResult:
        """Phase 3: the encoder and the fitted head train together on the labelled rows; the better of phase 2's
        and phase 3's models by validation is the run's (a tie keeps phase 2's)."""
        from nlp_transfer.training.loop import beats

        options = self.options
        fitted = {name: tensor.detach().to("cpu", copy=True) for name, tensor in inner.state_dict().items()}
        every = [name for name, _ in inner.named_parameters()]
        set_trainable(inner, set(every))
        learning_rate = options.contrastive_end_to_end_learning_rate
        groups = layerwise_groups(inner, every, learning_rate=learning_rate, weight_decay=run.config.training.weight_decay)
        phase_dir = checkpoint_dir(run.output_dir) / END_TO_END_DIR
        run.accelerator.print(
            f"contrastive phase 3: encoder and head together, {options.contrastive_end_to_end_epochs} epoch(s) "
            f"at learning rate {learning_rate:g}; kept only if validation beats the fitted head's "
            f"{head_result.metric_name} {head_result.best_metric}"
        )
        result = run.fit(
            model=run.model,
            param_groups=groups,
            training=replace(
                run.config.training,
                epochs=options.contrastive_end_to_end_epochs,
                learning_rate=learning_rate,
                eval_strategy="epoch",
            ),
            output_dir=phase_dir,
            resume=run.resume and latest_checkpoint(phase_dir) is not None,
        )
        kept = result.best_metric is not None and beats(result.metric_name, result.best_metric, head_result.best_metric)
        self.phase_three = {
            "epochs": options.contrastive_end_to_end_epochs,
            "learning_rate": learning_rate,
            "steps": result.global_step,
            "best_step": result.best_step,
            "best_metric": result.best_metric,
            "head_metric": head_result.best_metric,
            "metric": result.metric_name,
            "kept": kept,
            "train_seconds": round(result.train_seconds, 2),
        }
        if kept:
            result.train_seconds += head_result.train_seconds
            return result
        inner.load_state_dict(fitted)  # phase 3 did not beat the fitted head on validation: phase 2's model stays
        run.accelerator.print("contrastive phase 3: validation did not improve on the fitted head; its model is kept")
        head_result.train_seconds += result.train_seconds
        return head_result

    def pair_encoder(self, run: TrainingRun, inner: nn.Module) -> PairEncoder:
        """Phase 1's model: ``inner``'s encoder embedding both texts of each pair (each distinct text once a step
        where ``TransferConfig.contrastive_encodes_once``)."""
        return PairEncoder(
            inner,
            max_tokens=inference_token_budget(run.accelerator.device),
            encode_once=self.options.contrastive_encodes_once(),
        )

    def pair_task(self, run: TrainingRun) -> PairTask:
        """Phase 1's loss and metric over the run's label set, with the configured loss and temperature."""
        options = self.options
        return PairTask(
            run.task.collator(),
            len(run.task.labels),
            options.contrastive_loss,
            temperature=options.contrastive_temperature,
        )

    def run_info(self) -> dict[str, Any]:
        """Mean pooling, what phases 1 and 3 did, and the encoding time of phase 2."""
        return {
            "pooling": "mean",
            "cached_features": True,
            "feature_encoding_seconds": self.encoding_seconds,
            "head_fit": self.options.head_fit,
            "phases": {"contrastive": self.phase_one, **({"end_to_end": self.phase_three} if self.phase_three else {})},
        }
