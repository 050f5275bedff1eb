"""The comparison itself: every strategy at every size and seed, each in its own process, the report after each."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from nlp_transfer.compare.child import comparison_row, train_in_child
from nlp_transfer.compare.plan import (
    check_train_sizes,
    comparison_points,
    default_output_dir,
    fitted_to_strategy,
    label_counts,
    rows_at_all,
    run_config_for,
    varied_seed,
)
from nlp_transfer.compare.report import ReportContext, write_report
from nlp_transfer.compare.rows import REPORT_FILES, SCRATCH, ComparisonRow, Point, describe_point
from nlp_transfer.compare.tables import flag_negative_transfer
from nlp_transfer.config import RunConfig
from nlp_transfer.errors import UserError


def run_comparison(
    config: RunConfig,
    strategies: Sequence[str] | Mapping[str, str],
    train_sizes: Sequence[int | None] = (None,),
    *,
    per_class: Sequence[int] = (),
    seeds: int = 1,
    output_dir: str | Path | None = None,
    scratch: bool = True,
    strategy_configs: dict[str, RunConfig] | None = None,
    min_steps: int = 0,
    debug: bool = False,
    baseline: str = SCRATCH,
    overwrite: bool = False,
) -> list[ComparisonRow]:
    """Train every strategy (plus the from-scratch baseline) at every training size and seed; write the report.

    ``strategies`` names strategies, or maps run labels to strategies (:func:`parse_strategies`).
    ``strategy_configs`` gives a label (or ``scratch``) its own config in place of ``config``, e.g. a
    higher learning rate for lora and frozen (see :func:`split_strategy_overrides`). ``per_class`` sizes
    (in place of ``train_sizes``) train every run on ``data.per_class`` examples of each class, the same
    sample for every strategy at a size and seed. ``seeds`` repeats each size with that many seeds: the
    sample seeds ``data.sample_seed``, +1, ... with ``per_class`` (the run's own seed stays, and so does a
    held-out validation split), the run's ``seed``, +1, ... otherwise. ``min_steps`` raises the epochs of
    small training sets (``per_class`` times the number of classes with ``per_class``) so that every run
    takes at least that many optimizer steps (a learning curve at 50 examples is otherwise two steps long).
    Each run trains in its own child process (``debug``: with tracebacks and library logs) into
    ``OUTPUT_DIR/runs/``, the report to ``OUTPUT_DIR`` (default ``config.output_dir``-compare) after every run. A
    failed run is recorded with its error (``ComparisonRow.error``) and the comparison goes on. A run scoring below
    the ``baseline`` label's run of the same size and seed (the from-scratch run by default; e.g. the base model
    beside models adapted to a domain) is flagged as negative transfer. An earlier comparison needs ``overwrite``.
    """
    out = Path(output_dir) if output_dir else default_output_dir(config)
    check_earlier_report(out, overwrite)
    chosen = dict(strategies) if isinstance(strategies, Mapping) else {name: name for name in strategies}
    if scratch:
        chosen[SCRATCH] = "full"
    points = comparison_points(train_sizes, per_class, seeds)
    bases = {name: fitted_to_strategy((strategy_configs or {}).get(name, config), chosen[name], config) for name in chosen}
    labels = label_counts(bases, points)
    check_train_sizes(bases, points)
    check_run_configs(bases, chosen, points, min_steps, out, labels)
    remove_earlier_comparison(out)
    report = ReportContext(planned=len(points) * len(chosen), baseline=baseline if baseline in chosen else None)
    rows: list[ComparisonRow] = []
    with tempfile.TemporaryDirectory(prefix="nlp-transfer-compare-") as jobs:
        for point in points:
            for name, strategy in chosen.items():
                run_config = run_config_for(bases[name], name, strategy, point, min_steps, out / "runs", labels[name])
                where = describe_point(point, varied_seed(run_config))
                print(f"\n=== compare: {name}, {where} ===", flush=True)
                start = time.perf_counter()
                outcome = train_in_child(run_config, from_scratch=name == SCRATCH, jobs=Path(jobs), debug=debug)
                row = comparison_row(name, strategy, point.train_size, run_config, outcome, time.perf_counter() - start)
                if row.error:
                    print(f"=== compare: {name}, {where} failed: {row.error}", file=sys.stderr, flush=True)
                rows.append(row)
                flag_negative_transfer(rows, baseline)
                write_report(rows, out, report)  # after every run: an interrupted comparison keeps what it measured
    return rows


def check_run_configs(
    bases: Mapping[str, RunConfig],
    chosen: Mapping[str, str],
    points: Sequence[Point],
    min_steps: int,
    out: Path,
    labels: Mapping[str, int],
) -> None:
    """Check every label's run config before anything trains, against its model's structure too: a strategy's bad
    option (``fl:transfer.freeze_layers=9``) is one error now, not a failure in each of its runs' processes."""
    from nlp_transfer.config.parse import checked_config
    from nlp_transfer.transfer import check_strategy_fits_model

    for name, strategy in chosen.items():
        config = run_config_for(bases[name], name, strategy, points[0], min_steps, out / "runs", labels[name])
        try:
            check_strategy_fits_model(checked_config(config, name))
        except UserError as err:
            message = str(err)
            raise type(err)(message if message.startswith(f"{name}: ") else f"{name}: {message}") from None
    for base in bases.values():  # the data too: a file every run reads failed in each run's process, one by one
        rows_at_all(base)
    metrics = {name: bases[name].training.metric_for_best_model for name in chosen}
    if len(set(metrics.values())) > 1:  # each row reports its own selection metric: the ranking would mix two
        shown = ", ".join(f"{name}: {metric}" for name, metric in metrics.items())
        raise UserError(
            f"compare ranks every run on one metric, but training.metric_for_best_model differs between the runs "
            f"({shown}); set it for all of them (without a LABEL: prefix)."
        )


def check_earlier_report(out: Path, overwrite: bool) -> None:
    """Refuse to write over an earlier comparison's report unless ``overwrite`` (its rows would be lost)."""
    if (out / "compare.json").is_file() and not overwrite:
        raise UserError(
            f"{out} holds an earlier comparison (compare.md); a new one would replace its report and runs. "
            "Pass --overwrite to replace it, or --output ANOTHER_FOLDER."
        )


def remove_earlier_comparison(out: Path) -> None:
    """Delete an earlier comparison's report and runs (``--overwrite``, once this one's input has been checked), so
    that no run of it is left beside the new report; other files in the folder stay."""
    import shutil

    if not (out / "compare.json").is_file():
        return
    shutil.rmtree(out / "runs", ignore_errors=True)
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)


def failure_summary(rows: Sequence[ComparisonRow], output_dir: str | Path) -> str:
    """One line about the failed runs and how to go on ("" when none failed)."""
    failed = [r for r in rows if r.error]
    if not failed:
        return ""
    first = failed[0]
    seeded = len({r.seed for r in rows if r.per_class is None}) > 1
    where = describe_point(Point(first.train_size, first.per_class, 0 if seeded else None), first.seed)
    return (
        f"{len(failed)} of {len(rows)} runs failed (first: {first.strategy}, {where}: "
        f"{first.error}); the other rows are in {Path(output_dir) / 'compare.md'}. Fix that run's settings "
        f"({first.strategy}:key=value) and compare it again."
    )
