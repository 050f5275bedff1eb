"""Whether a run may be resumed with the config it is resumed with.

``--resume`` continues the optimisation recorded in the newest checkpoint. A setting that shapes that
optimisation (data, schedule, objective, model, strategy, where the best model is chosen) must be the
one the run started with, or the resumed run silently mixes two runs. Settings about speed, memory,
logging, housekeeping and what happens after training may change: they are reported, not refused.

Every key of :class:`nlp_transfer.config.RunConfig` is classified below, in one of two tuples that
the documentation prints; a test fails when a new key is in neither.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nlp_transfer.errors import UserError

ALTERS_TRAINING: tuple[str, ...] = (
    # what is trained, from what, and how it is seeded
    "model",
    "task",
    "strategy",
    "seed",
    # which rows, read how, with which labels and which validation set (the best model is chosen on it)
    "data.train_file",
    "data.validation_file",
    "data.format",
    "data.text_column",
    "data.label_column",
    "data.delimiter",
    "data.header",
    "data.encoding",
    "data.labels",
    "data.label_separator",
    "data.validation_split",
    "data.max_train_samples",
    "data.train_size",
    "data.max_eval_samples",
    "data.per_class",
    "data.sample_seed",
    "data.token_column",
    "data.tag_column",
    "data.tag_scheme",
    "data.hub_config",
    "data.hub_splits",
    "data.augment",
    "data.augment_copies",
    "data.augment_rate",
    "data.label_examples",
    "data.label_template",
    "data.label_descriptions",
    "data.unlabeled_file",
    "data.pseudo_labeled_file",
    "self_training.rounds",
    "self_training.threshold",
    "self_training.balance",
    "self_training.max_per_class",
    # the optimisation: schedule, batches, objective, precision, inputs
    "training.epochs",
    "training.batch_size",
    "training.fast_dropout_masks",  # another random stream for the dropout masks
    "training.learning_rate",
    "training.weight_decay",
    "training.warmup_ratio",
    "training.max_grad_norm",
    "training.gradient_accumulation_steps",
    "training.mixed_precision",
    "training.max_length",
    "training.long_text",
    "training.window_stride",
    "training.window_pooling",
    "training.group_by_length",
    "training.class_weights",
    "training.label_all_subwords",
    "training.document_context",
    # where evaluations (and so checkpoints and best models) land, what picks the best model, when it stops
    "training.eval_strategy",
    "training.eval_steps",
    "training.metric_for_best_model",
    "training.early_stopping_patience",
    "training.threshold",
    # the transfer strategy's shape: what trains, at which rate, with which adapters
    "transfer.freeze_pooler",
    "transfer.pooling",
    "transfer.cache_features",
    "transfer.head_fit",
    "transfer.head_c",
    "transfer.freeze_layers",
    "transfer.layer_lr_decay",
    "transfer.unfreeze_every",
    "transfer.unfreeze_every_steps",
    "transfer.peft_method",
    "transfer.lora_r",
    "transfer.lora_alpha",
    "transfer.lora_dropout",
    "transfer.lora_target_modules",
    "transfer.lora_pooler",
    "transfer.case_vocab",
    "transfer.depth",
    "transfer.contrastive_pairs",
    "transfer.contrastive_epochs",
    "transfer.contrastive_learning_rate",
    "transfer.contrastive_batch_size",
    "transfer.contrastive_loss",
    "transfer.contrastive_temperature",
    "transfer.contrastive_encode_once",
    "transfer.contrastive_end_to_end_epochs",
    "transfer.contrastive_end_to_end_learning_rate",
)
"""Settings that change what a run computes: ``--resume`` refuses a change to any of them."""

HARMLESS_ON_RESUME: tuple[str, ...] = (
    # where the run lives (a moved run directory), and permissions to load the same model
    "output_dir",
    "trust_remote_code",
    "allow_pickle",
    # scored once with the final best model, never read while training
    "data.test_file",
    # speed and memory: the same computation up to floating-point rounding
    "training.eval_batch_size",
    "training.gradient_checkpointing",
    "training.torch_compile",  # with fast_dropout_masks: torch's dropout masks from the resume on
    "training.torch_threads",
    "training.skip_unread_positions",  # the same dropout draws, too (training/first_position.py)
    "training.reuse_heap_memory",  # where freed bytes go, not what is computed
    # housekeeping: checkpoints written in between, logs
    "training.save_steps",
    "training.save_total_limit",
    "training.keep_checkpoints",
    "training.logging_steps",
    # what happens after training: how the model is saved and published
    "transfer.save_merged",
    "hub.push",
    "hub.repo_id",
    "hub.private",
    "hub.mode",
    "hub.license",
)
"""Settings that may change on ``--resume``: the run continues, and the changed ones are reported."""

FIX = "Resume with the original value, or start a new run with --overwrite or another output_dir."
ABSENT = "<absent>"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as ``{dotted.key: value}``; dict-valued settings (data.hub_splits) stay whole."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = prefix + key
        if isinstance(value, Mapping) and name not in ALTERS_TRAINING + HARMLESS_ON_RESUME:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


#: settings that name a file or folder: ``./train.csv`` and ``train.csv`` are the same one
PATH_KEYS = ("model", "data.train_file", "data.validation_file", "data.test_file", "data.unlabeled_file")


def _same(key: str, before: Any, after: Any) -> bool:
    """Whether a setting kept its value; two spellings of one local path count as the same (the data files' contents
    are compared separately)."""
    if before == after:
        return True
    if key in PATH_KEYS and isinstance(before, str) and isinstance(after, str) and os.path.exists(after):
        return os.path.normpath(os.path.expanduser(before)) == os.path.normpath(os.path.expanduser(after))
    return False


def changed_keys(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two config dicts (a key on one side only counts), in config order."""
    old, new = flatten(saved), flatten(current)
    keys = list(old) + [key for key in new if key not in old]
    return [key for key in keys if not _same(key, old.get(key, ABSENT), new.get(key, ABSENT))]


def check_resumable(saved: Mapping[str, Any], current: Mapping[str, Any], source: str) -> list[str]:
    """Refuse to resume when a setting that alters training changed; return the harmless changed keys.

    ``saved`` is the config the run started with (e.g. ``config_to_dict(load_config(RUN_DIR/config.yaml))``),
    ``current`` the one it is resumed with (``config_to_dict(config)``), ``source`` where ``saved`` came from
    (for the message). A key neither tuple knows (a setting newer than this check) is refused: it could
    alter training. Raises a one-line :class:`UserError` naming the first such key, its old and new values.
    """
    old, new = flatten(saved), flatten(current)
    changed = changed_keys(saved, current)
    refused = [key for key in changed if key not in HARMLESS_ON_RESUME]
    if refused:
        key = refused[0]
        others = f" (also changed: {', '.join(refused[1:])})" if refused[1:] else ""
        raise UserError(
            f"{source}: {key} changed from {old.get(key, ABSENT)!r} to {new.get(key, ABSENT)!r} since this run started"
            f"{others}; --resume would mix two different trainings. {FIX}"
        )
    return changed
