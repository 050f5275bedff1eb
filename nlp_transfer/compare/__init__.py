"""Compare transfer strategies on the same data: metric, trainable parameters, time, peak memory.

Each strategy (and a from-scratch baseline: the same architecture with random weights, trained
fully) runs once per training-set size (or few-shot size in examples per class, ``data.per_class``)
and seed through :func:`nlp_transfer.pipeline.run_training`, each run
in a child process of its own (``python -m nlp_transfer.compare JOB.json``): its peak memory is its
own, it starts from a fresh Accelerate state, and a crash fails that run only. The results go to
``compare.json``, ``compare.md`` and ``compare.png`` after every run. A strategy that scores below
the from-scratch baseline at the same size is flagged as negative transfer. Over several seeds the
report adds each strategy's mean and standard deviation per size (:func:`aggregate_rows`) and the
strategy to use at each size (:func:`recommendations`), with whether the seeds separate it from the next best.

The modules, in the order a comparison uses them: ``plan`` (the runs asked for), ``run`` (the loop over
them), ``child`` (one run in its own process), ``tables`` (the per-run table, negative transfer), ``seeds``
(aggregates and the recommendation), ``report`` (the files); ``rows`` holds what they share.
"""

from __future__ import annotations

from nlp_transfer.compare.child import ChildOutcome, child_main, comparison_row, own_peak_rss_bytes, run_child, train_in_child
from nlp_transfer.compare.plan import (
    comparison_points,
    default_output_dir,
    epochs_for_min_steps,
    label_config,
    parse_per_class,
    parse_strategies,
    parse_train_sizes,
    per_class_labels,
    run_name,
    split_strategy_overrides,
)
from nlp_transfer.compare.report import ReportContext, plot_comparison, plot_curve, write_report
from nlp_transfer.compare.rows import (
    CHILD_RSS,
    CHILD_RSS_BOUND,
    CUDA_PEAK,
    MEMORY_NOTES,
    METRICS_FILE,
    REPORT_FILES,
    RUN_INFO_FILE,
    SCRATCH,
    ComparisonRow,
    Point,
    describe_point,
)
from nlp_transfer.compare.run import failure_summary, run_comparison
from nlp_transfer.compare.seeds import (
    DIGITS,
    AggregateRow,
    aggregate_rows,
    aggregate_table,
    lead_text,
    recommendation,
    recommendations,
    several_seeds,
    size_text,
    spread_text,
)
from nlp_transfer.compare.tables import flag_negative_transfer, markdown_table

__all__ = [
    "CHILD_RSS",
    "CHILD_RSS_BOUND",
    "CUDA_PEAK",
    "DIGITS",
    "MEMORY_NOTES",
    "METRICS_FILE",
    "REPORT_FILES",
    "RUN_INFO_FILE",
    "SCRATCH",
    "AggregateRow",
    "ChildOutcome",
    "ComparisonRow",
    "Point",
    "ReportContext",
    "aggregate_rows",
    "aggregate_table",
    "child_main",
    "comparison_points",
    "comparison_row",
    "default_output_dir",
    "describe_point",
    "epochs_for_min_steps",
    "failure_summary",
    "flag_negative_transfer",
    "label_config",
    "lead_text",
    "markdown_table",
    "own_peak_rss_bytes",
    "parse_per_class",
    "parse_strategies",
    "parse_train_sizes",
    "per_class_labels",
    "plot_comparison",
    "plot_curve",
    "recommendation",
    "recommendations",
    "run_child",
    "run_comparison",
    "run_name",
    "several_seeds",
    "size_text",
    "split_strategy_overrides",
    "spread_text",
    "train_in_child",
    "write_report",
]
