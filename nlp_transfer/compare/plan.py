"""Which runs a comparison makes: the strategies and sizes asked for, and each run's config and directory."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from nlp_transfer.compare.rows import SCRATCH, Point
from nlp_transfer.config import RunConfig, TransferConfig, check_per_class
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.transfer import STRATEGIES

#: what a run label may be: it names the run's folder under runs/ (no path) and a row of the Markdown table
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def parse_strategies(text: str) -> dict[str, str]:
    """``full,frozen,llrd=full`` -> {run label: strategy}, checked.

    A plain name compares that strategy; ``LABEL=STRATEGY`` adds a variant of a strategy under its own
    label, which ``LABEL:key=value`` overrides then configure (e.g. ``llrd=full`` with
    ``llrd:transfer.layer_lr_decay=0.8``).
    """
    entries: dict[str, str] = {}
    unknown = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        label, _, strategy = item.partition("=")
        label, strategy = label.strip(), (strategy or label).strip()
        if strategy not in STRATEGIES:
            unknown.append(strategy)
        elif label and not LABEL_RE.fullmatch(label):  # it names the run's folder and a table row
            raise ConfigError(
                f"--strategies: the label {label!r} may hold only letters, digits and _ . + - (starting with a letter "
                "or digit); it names the run's folder."
            )
        elif not label or label == SCRATCH or label in entries:
            raise ConfigError(f"--strategies: the label {label!r} is empty, reserved or given twice; name each run once.")
        else:
            entries[label] = strategy
    if not entries or unknown:
        raise ConfigError(f"--strategies: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(STRATEGIES)}.")
    return entries


def split_strategy_overrides(overrides: Sequence[str], strategies: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split ``key=value`` overrides into the common ones and ``STRATEGY:key=value`` ones for one strategy.

    ``lora:training.learning_rate=5e-4`` changes the learning rate of the lora runs only; the prefix
    may be any compared strategy or ``scratch``.
    """
    common: list[str] = []
    own: dict[str, list[str]] = {}
    for item in overrides:
        key = item.partition("=")[0]
        if key.rpartition(":")[2].strip() == "strategy":  # "strategy=lora" or "full:strategy=lora"
            raise ConfigError(
                f"override {item!r}: compare sets each run's strategy from --strategies (LABEL=STRATEGY names a "
                "variant, e.g. --strategies full,mine=lora); drop the override."
            )
        prefix, sep, rest = item.partition(":")
        if sep and "=" not in prefix:
            if prefix not in (*strategies, SCRATCH):
                raise ConfigError(
                    f"override {item!r}: '{prefix}' is not a compared strategy; use one of {', '.join((*strategies, SCRATCH))}."
                )
            own.setdefault(prefix, []).append(rest)
        else:
            common.append(item)
    return common, own


def _positive(item: str) -> int | None:
    """``item`` as a positive whole number written in ASCII digits, else None (``"²".isdigit()`` is true)."""
    return int(item) if item.isascii() and item.isdigit() and int(item) > 0 else None


def parse_train_sizes(text: str) -> list[int | None]:
    """``50,100,all`` -> ``[50, 100, None]`` (None: all the training data)."""
    sizes: list[int | None] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        size = None if item == "all" else _positive(item)
        if size is None and item != "all":
            raise ConfigError(f"--train-sizes: {item!r} is neither a positive number nor 'all'.")
        if size in sizes:
            raise ConfigError(f"--train-sizes: {item} is given twice; give each size once (--seeds repeats a size).")
        sizes.append(size)
    if not sizes:
        raise ConfigError("--train-sizes: give at least one size, e.g. 50,100,all.")
    return sizes


def parse_per_class(text: str) -> list[int]:
    """``8,16,32`` -> ``[8, 16, 32]``: the training examples of each class at each point of a few-shot curve."""
    sizes: list[int] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if _positive(item) is None:
            raise ConfigError(f"--per-class: {item!r} is not a positive number of examples per class, e.g. 8,16,32,64.")
        if int(item) in sizes:
            raise ConfigError(f"--per-class: {item} is given twice; give each size once.")
        sizes.append(int(item))
    if not sizes:
        raise ConfigError("--per-class: give at least one size, e.g. 8,16,32,64.")
    return sizes


def comparison_points(train_sizes: Sequence[int | None] = (None,), per_class: Sequence[int] = (), seeds: int = 1) -> list[Point]:
    """The points of a comparison, each size with each of ``seeds`` seeds: ``per_class`` sizes when given, else ``train_sizes``.

    One seed of ``train_sizes`` keeps the config's seed (``seed_offset`` None); ``per_class`` always counts its
    sample seeds from ``data.sample_seed``.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}.")
    if per_class:
        if list(train_sizes) != [None]:
            raise ConfigError("--per-class and --train-sizes both choose the training rows; give one of them.")
        return [Point(per_class=size, seed_offset=seed) for size in per_class for seed in range(seeds)]
    offsets = [None] if seeds == 1 else list(range(seeds))
    return [Point(train_size=size, seed_offset=seed) for size in train_sizes for seed in offsets]


def epochs_for_min_steps(epochs: int, train_size: int, batch_size: int, min_steps: int) -> int:
    """Epochs that give at least ``min_steps`` optimizer steps on ``train_size`` examples (never fewer than ``epochs``)."""
    steps_per_epoch = max(1, math.ceil(train_size / batch_size))
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


def default_output_dir(config: RunConfig) -> Path:
    """Where a comparison's report goes unless told: ``OUTPUT_DIR-compare``."""
    return Path(f"{config.output_dir.rstrip('/')}-compare")


def run_name(label: str, point: Point, run_config: RunConfig) -> str:
    """The run's directory name under ``runs/``: label, size and (when seeds vary) the seed, so no two runs share it."""
    if point.per_class is not None:
        return f"{label}-{point.per_class}-per-class-seed{run_config.data.sample_seed}"
    name = f"{label}-{point.train_size or 'all'}"
    return name if point.seed_offset is None else f"{name}-seed{run_config.seed}"


def fitted_to_strategy(base: RunConfig, strategy: str, common: RunConfig) -> RunConfig:
    """``base`` for a run of ``strategy``: options that only other strategies read go back to their defaults where the
    shared config set them (a LoRA recipe's ``lora_r`` does not reach its full fine-tuning run, a gradual recipe's
    ``layer_lr_decay`` not its frozen one), and stay where a ``LABEL:`` override set them, to be refused there."""
    from nlp_transfer.transfer.base import without_unread_options

    return without_unread_options(base, strategy, shared=common)


def label_config(common: RunConfig, strategy: str, overrides: Sequence[str], source: str) -> RunConfig:
    """The config of one label's runs: the shared config fitted to the label's strategy, then its ``LABEL:``
    overrides, checked against that strategy (``fl:transfer.freeze_layers=2`` under a full fine-tuning recipe)."""
    from nlp_transfer.config import config_to_dict
    from nlp_transfer.config.parse import apply_overrides, config_from_dict

    raw = config_to_dict(fitted_to_strategy(common, strategy, common))
    raw["strategy"] = strategy
    overridden = apply_overrides(raw, list(overrides))
    return config_from_dict(raw, source=source, overridden=overridden)


def run_config_for(
    base: RunConfig, name: str, strategy: str, point: Point, min_steps: int, runs_dir: Path, labels: int
) -> RunConfig:
    """The config of one run: ``base`` with the run's strategy, training rows, seed, epochs and run directory.

    ``labels`` (the number of classes) turns examples per class into the training size the epoch floor needs.
    """
    run_config = copy.deepcopy(base)
    run_config.strategy = strategy  # type: ignore[assignment]
    if name == SCRATCH:  # the baseline: plain full training of random weights, of the same architecture and head
        run_config.transfer = TransferConfig(depth=base.transfer.depth, pooling=base.transfer.pooling)
    size = point.train_size
    if point.per_class is not None:  # the same rows for every strategy at this size and seed
        run_config.data.per_class = point.per_class
        run_config.data.sample_seed = base.data.sample_seed + (point.seed_offset or 0)
        size = point.per_class * labels
    else:
        run_config.seed = base.seed + (point.seed_offset or 0)
        if base.data.per_class is not None:  # "all" of a config's few-shot sample: each seed draws its own sample too
            run_config.data.sample_seed = base.data.sample_seed + (point.seed_offset or 0)
        if size is not None:  # the first rows left once validation is held out: the same validation at every size
            run_config.data.train_size = size
    if size is None and min_steps:  # all: the rows the run will train on (the whole split, a cap, a per-class sample)
        size = rows_at_all(run_config)
    if size is not None:
        training = run_config.training
        per_step = training.batch_size * training.gradient_accumulation_steps
        training.epochs = epochs_for_min_steps(training.epochs, size, per_step, min_steps)
    run_config.output_dir = str(runs_dir / run_name(name, point, run_config))
    return run_config


def per_class_labels(config: RunConfig, largest: int) -> list[str]:
    """The label names of ``config``'s data, read as a run at ``largest`` examples per class reads it.

    Raises, before anything trains, the error every ``--per-class`` run would meet: a task without classes,
    data.max_train_samples set, a class with fewer training rows than ``largest``.
    """
    from nlp_transfer.data.loading import load_splits
    from nlp_transfer.data.text_rows import TextRows

    trial = copy.deepcopy(config)
    trial.data.per_class = largest
    check_per_class(trial, "--per-class")
    return load_splits(trial.data, TextRows(trial.data, trial.task == "multilabel"), seed=trial.seed).labels


def label_counts(configs: Mapping[str, RunConfig], points: Sequence[Point]) -> dict[str, int]:
    """Label -> number of classes of its config's data, for a ``--per-class`` comparison (each distinct data read once)."""
    sizes = [p.per_class for p in points if p.per_class is not None]
    if not sizes:
        return {name: 0 for name in configs}
    read: dict[str, int] = {}
    counts: dict[str, int] = {}
    for name, config in configs.items():
        key = json.dumps([config.task, config.seed, asdict(config.data)], sort_keys=True, default=str)
        if key not in read:
            read[key] = len(per_class_labels(config, max(sizes)))
        counts[name] = read[key]
    return counts


def check_train_sizes(configs: Mapping[str, RunConfig], points: Sequence[Point]) -> None:
    """Refuse a ``--train-sizes`` size larger than a config's training split, before anything trains (it was capped
    silently, and reported as the size asked for)."""
    sizes = [p.train_size for p in points if p.per_class is None and p.train_size is not None]
    if not sizes:
        return
    for config in configs.values():
        if config.data.per_class is not None:  # "all" keeps the config's sample; a size in rows would contradict it
            raise UserError(
                f"--train-sizes {','.join(map(str, sizes))} and the config's data.per_class={config.data.per_class} both "
                "choose the training rows. Give sizes per class with --per-class, or set data.per_class=null."
            )
        rows = training_rows(config)
        if rows is not None and max(sizes) > rows:
            raise UserError(
                f"--train-sizes {max(sizes)}: {config.data.train_file} has {rows:,} training rows once validation is "
                f"held out. Give sizes up to {rows:,}, or all."
            )


def training_rows(config: RunConfig) -> int | None:
    """How many training rows ``config``'s data has once validation is held out (no per-class sample, no
    data.train_size; the config's data.max_train_samples, which caps the rows read before the hold-out, applies)."""
    trial = copy.deepcopy(config)
    trial.data.per_class, trial.data.train_size = None, None
    return rows_at_all(trial)


#: rows_at_all's answers, by data settings: a comparison asks once per run and the data stays the same
_ROWS_AT_ALL: dict[str, int] = {}


def rows_at_all(config: RunConfig) -> int | None:
    """How many training rows a run of ``config`` at size ``all`` reads: the split once validation is held out,
    capped by data.max_train_samples, or the config's data.per_class sample. None for a task added outside the
    package, whose builder alone knows how its data is read."""
    from nlp_transfer.data.loading import load_splits
    from nlp_transfer.data.tagged_rows import TaggedRows
    from nlp_transfer.data.text_rows import TextRows

    if config.task not in ("classification", "multilabel", "ner"):
        return None
    train = Path(config.data.train_file or "")
    stamp = train.stat().st_mtime_ns if train.is_file() else None  # the same path rewritten is other data
    key = json.dumps([config.task, config.seed, asdict(config.data), stamp], sort_keys=True, default=str)
    if key not in _ROWS_AT_ALL:
        reader = TaggedRows(config.data) if config.task == "ner" else TextRows(config.data, config.task == "multilabel")
        _ROWS_AT_ALL[key] = len(load_splits(config.data, reader, seed=config.seed).rows["train"])
    return _ROWS_AT_ALL[key]


def varied_seed(run_config: RunConfig) -> int:
    """The seed a comparison's seeds vary: the sample seed of a data.per_class run (a --train-sizes all run of a
    few-shot config varies it with the run's seed), else the run's seed."""
    return run_config.data.sample_seed if run_config.data.per_class is not None else run_config.seed
