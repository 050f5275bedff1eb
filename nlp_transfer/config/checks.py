"""What a config's values may be beyond their types: ranges per key, and settings that contradict each other."""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

from nlp_transfer.config.schema import RunConfig, TransferConfig
from nlp_transfer.errors import ConfigError


def _at_least(low: int, nullable: bool = False) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: math.isfinite(v) and v >= low), f"at least {low}" + (" (or null)" if nullable else "")


def _positive(nullable: bool = False) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: math.isfinite(v) and v > 0), "positive" + (" (or null)" if nullable else "")


def _fraction(low_open: bool, high_open: bool) -> tuple[Callable[[Any], bool], str]:
    allowed = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    return (lambda v: (0 < v if low_open else 0 <= v) and (v < 1 if high_open else v <= 1)), f"in {allowed}"


def _seed_range() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: 0 <= v < 2**32), f"in [0, {2**32 - 1}] (what numpy's and torch's generators take)"


# Allowed values per dotted key: (test, how the message names the range). A null value (allowed by the type) passes.
VALUE_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "training.epochs": _at_least(1),
    "training.batch_size": _at_least(1),
    "training.eval_batch_size": _at_least(1),
    "training.learning_rate": _positive(),
    "training.weight_decay": _at_least(0),
    "training.warmup_ratio": _fraction(low_open=False, high_open=True),
    "training.max_grad_norm": _positive(nullable=True),
    "training.gradient_accumulation_steps": _at_least(1),
    "training.max_length": _at_least(8),
    "training.eval_steps": _at_least(1),
    "training.early_stopping_patience": _at_least(1, nullable=True),
    "training.save_steps": _at_least(1, nullable=True),
    "training.save_total_limit": _at_least(1),
    "training.logging_steps": _at_least(1),
    "training.torch_threads": _at_least(1, nullable=True),
    "training.threshold": _fraction(low_open=True, high_open=True),
    "training.document_context": _at_least(0),
    "training.window_stride": _at_least(0, nullable=True),
    "data.validation_split": _fraction(low_open=True, high_open=True),
    "data.max_train_samples": _at_least(1, nullable=True),
    "data.train_size": _at_least(1, nullable=True),
    "data.max_eval_samples": _at_least(1, nullable=True),
    "data.augment_copies": _at_least(1),
    "data.augment_rate": _fraction(low_open=True, high_open=False),
    "data.label_examples": _at_least(0),
    "data.per_class": _at_least(1, nullable=True),
    "self_training.rounds": _at_least(1),
    "self_training.threshold": _fraction(low_open=False, high_open=False),
    "self_training.max_per_class": _at_least(1, nullable=True),
    "transfer.freeze_layers": _at_least(0),
    "transfer.depth": _at_least(1, nullable=True),
    "transfer.contrastive_pairs": ((lambda v: v == "setfit" or v >= 1), "at least 1, or setfit"),
    "transfer.contrastive_epochs": _at_least(1),
    "transfer.contrastive_learning_rate": _positive(),
    "transfer.contrastive_batch_size": _at_least(1),
    "transfer.contrastive_temperature": _positive(),
    "transfer.contrastive_end_to_end_epochs": _at_least(0),
    "transfer.contrastive_end_to_end_learning_rate": _positive(),
    "transfer.head_c": _positive(),
    "transfer.layer_lr_decay": _fraction(low_open=True, high_open=False),
    "transfer.unfreeze_every": _at_least(1),
    "transfer.unfreeze_every_steps": _at_least(1, nullable=True),
    "transfer.lora_r": _at_least(1),
    "transfer.lora_alpha": _at_least(1),
    "transfer.lora_dropout": _fraction(low_open=False, high_open=True),
    "seed": _seed_range(),
    "data.sample_seed": _seed_range(),
    "data.delimiter": ((lambda v: len(v) == 1), "one character (e.g. ',' or a tab)"),
    "data.label_separator": ((lambda v: v.strip() != ""), "a non-blank string (e.g. '|')"),
}


def check_ranges(settings: Any, source: str, section: str = "") -> None:
    """Range checks that types alone cannot express (:data:`VALUE_RANGES`): of a whole config, or with ``section``
    (``"training"``) of that section's settings alone (a :class:`TrainingConfig` handed to ``fit``)."""
    for key, (allowed, text) in VALUE_RANGES.items():
        if section and not key.startswith(f"{section}."):
            continue
        value = functools.reduce(getattr, key.split(".")[1:] if section else key.split("."), settings)
        if value is not None and not allowed(value):
            raise ConfigError(f"{source}: {key} must be {text}, got {value!r}. Fix the value of {key}.")


def check_values(config: RunConfig, source: str) -> None:
    """Range checks (:func:`check_ranges`), then settings that contradict each other."""
    check_ranges(config, source)
    t, d = config.training, config.data
    if t.document_context and config.task != "ner":
        raise ConfigError(f"{source}: training.document_context is for task=ner; remove it for task={config.task}.")
    if d.train_file is None:
        raise ConfigError(f"{source}: data.train_file is required. Set it in the config or as data.train_file=PATH.")
    if config.task != "ner" and d.text_column == d.label_column:
        raise ConfigError(
            f"{source}: data.text_column and data.label_column both name '{d.text_column}': the model would read its "
            "own labels. Set data.text_column to the column that holds the texts."
        )
    if d.labels is not None and len(set(d.labels)) < len(d.labels):
        twice = sorted({label for label in d.labels if d.labels.count(label) > 1})
        raise ConfigError(f"{source}: data.labels names {', '.join(twice)} more than once. List each label once.")
    if d.labels and config.task == "ner":
        check_listed_tags(d.labels, source)
    if config.hub.push and not config.hub.repo_id:
        raise ConfigError(f"{source}: hub.push is true but hub.repo_id is not set. Set hub.repo_id=OWNER/NAME.")
    _check_task_and_strategy(config, source)
    check_long_text(config, source)
    check_augment(config, source)
    check_label_examples(config, source)
    check_per_class(config, source)
    check_pseudo_labels(config, source)
    check_head_fit(config, source)
    check_end_to_end_rate(config, source)


#: set while adapt reads a config: it reads no task or strategy of it, so their limits on its settings do not hold
_FOR_ADAPT = contextvars.ContextVar("for_adapt", default=False)


@contextlib.contextmanager
def checks_for_adapt() -> Iterator[None]:
    """Check configs as ``adapt`` reads them (any recipe's config, whatever its task and strategy) inside the block."""
    token = _FOR_ADAPT.set(True)
    try:
        yield
    finally:
        _FOR_ADAPT.reset(token)


def check_long_text(config: RunConfig, source: str) -> None:
    """training.long_text=windows serves classification and multilabel (and adapt, whatever the config's task and
    strategy), with a stride that leaves windows room to advance."""
    t = config.training
    if t.long_text != "windows":
        return
    if config.task not in ("classification", "multilabel") and not _FOR_ADAPT.get():
        raise ConfigError(
            f"{source}: training.long_text=windows is for task=classification and multilabel; "
            f"set training.long_text=truncate for task={config.task}."
        )
    if t.window_stride is not None and t.window_stride > t.max_length // 2:
        raise ConfigError(
            f"{source}: training.window_stride must be at most half of training.max_length ({t.max_length // 2}), "
            f"got {t.window_stride}. Fix the value of training.window_stride."
        )
    if caches_features(config) and not _FOR_ADAPT.get():
        fix = "set transfer.cache_features=false" if config.strategy == "frozen" else "choose another strategy"
        raise ConfigError(
            f"{source}: training.long_text=windows cannot run with strategy={config.strategy}: its head trains on cached "
            f"features of whole rows, which do not know their documents; {fix}, or set training.long_text=truncate."
        )


def caches_features(config: RunConfig) -> bool:
    """Whether the head trains on cached encoder outputs: strategy contrastive, or frozen with its cache."""
    return config.strategy == "contrastive" or (config.strategy == "frozen" and config.transfer.cache_features)


def check_head_fit(config: RunConfig, source: str) -> None:
    """A head fitted in one solve needs cached features (strategy contrastive, or frozen with its cache) and class
    labels: classification or multilabel (ner, and a task added outside the package, train their head in steps)."""
    if config.transfer.head_fit == "steps":
        if config.transfer.head_c != TransferConfig().head_c:  # the penalty of a solve that never runs
            raise ConfigError(
                f"{source}: transfer.head_c sets the penalty of transfer.head_fit=logistic; this run's head trains in "
                "steps and would ignore it. Remove transfer.head_c, or set transfer.head_fit=logistic."
            )
        return
    if not caches_features(config) or config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: transfer.head_fit=logistic fits a head on cached features (strategy=contrastive, or frozen with "
            f"transfer.cache_features=true, for classification or multilabel); this run has strategy={config.strategy}, "
            f"task={config.task}. Set transfer.head_fit=steps."
        )
    if config.transfer.freeze_pooler:
        raise ConfigError(
            f"{source}: transfer.head_fit=logistic sets the pooler to pass the vector through, so it cannot stay frozen; "
            "remove transfer.freeze_pooler or set transfer.head_fit=steps."
        )
    end_to_end = config.strategy == "contrastive" and config.transfer.contrastive_end_to_end_epochs > 0
    if config.training.class_weights != "none" and not end_to_end:  # the solve has none: the weights did nothing
        raise ConfigError(
            f"{source}: training.class_weights={config.training.class_weights} weights the loss of a head trained in "
            "steps (or contrastive's end-to-end phase); transfer.head_fit=logistic solves an unweighted head. Set "
            "transfer.head_fit=steps, or drop class_weights."
        )


def check_end_to_end_rate(config: RunConfig, source: str) -> None:
    """contrastive's phase-3 learning rate needs phase 3 (``transfer.contrastive_end_to_end_epochs`` > 0)."""
    t = config.transfer
    if (
        t.contrastive_end_to_end_epochs == 0
        and t.contrastive_end_to_end_learning_rate != TransferConfig().contrastive_end_to_end_learning_rate
    ):
        raise ConfigError(
            f"{source}: transfer.contrastive_end_to_end_learning_rate is the rate of phase 3, which is off "
            "(transfer.contrastive_end_to_end_epochs=0) and would ignore it. Set contrastive_end_to_end_epochs, or remove the rate."
        )


def check_pseudo_labels(config: RunConfig, source: str) -> None:
    """Self-training and pseudo-labelled rows are for single-label text classification."""
    for key in ("unlabeled_file", "pseudo_labeled_file"):
        if getattr(config.data, key) and config.task != "classification":
            raise ConfigError(
                f"{source}: data.{key} is for task=classification (one label per text); remove it for task={config.task}."
            )
    if config.data.unlabeled_file and config.data.pseudo_labeled_file:  # each round sets its own: the file was ignored
        raise ConfigError(
            f"{source}: data.pseudo_labeled_file and data.unlabeled_file both set; self-training writes each round's "
            "pseudo-labels itself. Append your labelled rows to data.train_file, or drop one of the two."
        )


def check_per_class(config: RunConfig, source: str) -> None:
    """data.per_class samples the classes of text classification, and contradicts data.max_train_samples and
    data.train_size."""
    per_class = config.data.per_class
    if per_class is None:
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: data.per_class samples classification and multilabel data; remove it for task={config.task}."
        )
    if config.data.max_train_samples is not None:
        raise ConfigError(
            f"{source}: data.per_class={per_class} and data.max_train_samples={config.data.max_train_samples} both "
            "choose the training rows; set one of them (data.max_train_samples=null)."
        )
    if config.data.train_size is not None:
        raise ConfigError(
            f"{source}: data.per_class={per_class} and data.train_size={config.data.train_size} both choose the "
            "training rows; set one of them (data.train_size=null)."
        )


def check_label_examples(config: RunConfig, source: str) -> None:
    """data.label_examples serves text classification, with a template that has a place for the label."""
    d = config.data
    if not d.label_examples:
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: data.label_examples adds rows for classification and multilabel; remove it for task={config.task}."
        )
    if "{}" not in d.label_template:
        raise ConfigError(
            f"{source}: data.label_template must hold {{}} where the label's name goes, got {d.label_template!r}. "
            "Write it like 'This sentence is {}.'."
        )
    empty = [name for name, text in d.label_descriptions.items() if not str(text).strip()]
    if empty:
        raise ConfigError(f"{source}: data.label_descriptions gives '{empty[0]}' no words. Give it a description or remove it.")


def check_augment(config: RunConfig, source: str) -> None:
    """data.augment names registered augmenters, once each, and the task is text classification."""
    from nlp_transfer.data.augment import AUGMENTERS

    names = config.data.augment
    if not names:
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: data.augment alters texts for classification and multilabel; remove it for task={config.task} "
            "(data.augment=[])."
        )
    for name in names:
        if name not in AUGMENTERS:
            close = difflib.get_close_matches(name, list(AUGMENTERS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: data.augment: {name!r} is not one of {', '.join(AUGMENTERS)}.{hint}")
        if names.count(name) > 1:
            raise ConfigError(f"{source}: data.augment lists {name!r} twice; list each augmenter once.")


def _check_task_and_strategy(config: RunConfig, source: str) -> None:
    """The task and strategy are registered, and the strategy accepts the run's transfer options."""
    from nlp_transfer.tasks import TASKS
    from nlp_transfer.transfer import STRATEGIES, build_strategy

    for key, value, choices in (("task", config.task, TASKS), ("strategy", config.strategy, STRATEGIES)):
        if value not in choices:
            same_but_case = [c for c in choices if c.lower() == str(value).lower()]  # strategy=LoRA, task=NER
            close = same_but_case or difflib.get_close_matches(value, list(choices), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(choices)}.{hint}")
    try:
        build_strategy(config)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def check_listed_tags(names: list[str], source: str) -> None:
    """NER's ``data.labels``: IOB2 tags (``O``, ``B-TYPE``, ``I-TYPE``), with both of each type, as the files are read.

    Every file's tags are rewritten to IOB2 whatever its scheme, so a BIOES or unprefixed tag in the list would never
    match a word, and a ``B-`` without its ``I-`` leaves continuation pieces and entities without an id.
    """
    fix = "List O and a B- and an I- tag for each entity type (files in IOB1 or BIOES are read as IOB2), or drop data.labels."
    for name in names:
        if name != "O" and not (name[:2] in ("B-", "I-") and name[2:]):
            raise ConfigError(f"{source}: data.labels lists '{name}', which is not an IOB2 tag (O, B-TYPE, I-TYPE). {fix}")
    listed = set(names)
    for name in names:
        partner = {"B-": "I-", "I-": "B-"}.get(name[:2], "") + name[2:]
        if name != "O" and partner not in listed:
            raise ConfigError(f"{source}: data.labels lists '{name}' without '{partner}'. {fix}")
