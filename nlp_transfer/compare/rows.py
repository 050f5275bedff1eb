"""What a comparison records: one row per run, where a run sits on the curve, and the report's constants."""

from __future__ import annotations

from dataclasses import dataclass

from nlp_transfer.evaluation.metrics import lower_is_better

SCRATCH = "scratch"


REPORT_FILES = ("compare.json", "compare.md", "compare.png")


METRICS_FILE, RUN_INFO_FILE = "metrics.json", "run_info.json"  # what a finished run leaves in its run directory


CHILD_RSS = "child_peak_rss"


CHILD_RSS_BOUND = "child_peak_rss_upper_bound"


CUDA_PEAK = "cuda_max_allocated"


MEMORY_NOTES = {
    CHILD_RSS: "peak resident set of the run's own process, as it reported it (interpreter and libraries included)",
    CHILD_RSS_BOUND: "the kernel's peak resident set of a run that died before reporting its own; it counts the "
    "comparison's own resident set as a floor",
    CUDA_PEAK: "CUDA allocator peak of the run's process",
    "unavailable": "not measured",
}


@dataclass
class ComparisonRow:
    """One run of the comparison."""

    strategy: str
    train_size: int | None  # None: all the training data
    train_examples: int
    metric: str
    split: str
    value: float | None  # None: the run failed (see error)
    trainable_parameters: int
    total_parameters: int
    train_seconds: float
    peak_memory_mb: float
    memory_kind: str
    run_dir: str
    learning_rate: float = 0.0
    negative_transfer: bool = False  # scored below the baseline run (``below``) of the same size and seed
    epochs: int = 0
    base_strategy: str = ""  # the strategy behind the label (``strategy``); scratch trains fully
    trainable_parameters_end: int = 0  # at the end of training (gradual unfreezing opens more as it goes); 0: unknown
    error: str = ""  # a failed run: the last error line of its process ("": it succeeded)
    per_class: int | None = None  # --per-class: the training examples of each class (data.per_class); None: train_size
    seed: int | None = None  # the seed --seeds varies: data.sample_seed with --per-class, else the run's seed
    below: str = ""  # the baseline label a negative-transfer row scored below (scratch, or --baseline's label)
    validation: float | None = None  # the metric on validation, what a recommendation ranks by (``value`` may be test)


@dataclass(frozen=True)
class Point:
    """Where a run sits on the learning curve: a training size or examples per class, and a seed offset.

    ``seed_offset`` None: the config's own seed, and run directories named as before seeds existed.
    """

    train_size: int | None = None  # None: all the training data (or the config's data.max_train_samples)
    per_class: int | None = None
    seed_offset: int | None = None


def describe_point(point: Point, seed: int | None) -> str:
    """Where a run sits, in words: ``8 per class, sample seed 0``, ``train size 100``, ``train size 100, seed 43``."""
    if point.per_class is not None:
        return f"{point.per_class} per class, sample seed {seed}"
    text = f"train size {point.train_size or 'all'}"
    return text if point.seed_offset is None else f"{text}, seed {seed}"


def scores_better(value: float, other: float, metric: str) -> bool:
    """Whether ``value`` beats ``other`` on ``metric`` (lower is better for a loss)."""
    return value < other if lower_is_better(metric) else value > other
