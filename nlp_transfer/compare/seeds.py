"""Over seeds: each strategy's mean and spread per size, and the strategy to use at each size."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from nlp_transfer.compare.rows import SCRATCH, ComparisonRow, scores_better
from nlp_transfer.evaluation.metrics import lower_is_better

DIGITS = 4  # decimals of a metric in the report; means equal to this precision are a tie


@dataclass
class AggregateRow:
    """One strategy at one size over its seeds: mean and spread of the headline metric, failed runs counted apart."""

    strategy: str
    train_size: int | None
    per_class: int | None
    train_examples: int  # the most training examples of its successful runs (0: none succeeded)
    metric: str
    split: str
    mean: float | None  # None: no run succeeded
    std: float | None  # sample standard deviation (ddof=1) over the successful runs; None with fewer than 2
    seeds: int  # successful runs
    failed: int  # failed runs, left out of mean and std
    validation_mean: float | None = None  # the metric on validation, what the recommendation ranks by; None: unknown
    validation_std: float | None = None  # its sample standard deviation; None with fewer than 2 seeds


def several_seeds(rows: Sequence[ComparisonRow]) -> bool:
    """Whether a comparison is a curve over seeds (sizes per class, or a size run more than once): it gets the aggregate."""
    sizes = [(r.strategy, r.train_size, r.per_class) for r in rows]
    return any(r.per_class is not None for r in rows) or len(set(sizes)) < len(sizes)


def aggregate_rows(rows: Sequence[ComparisonRow]) -> list[AggregateRow]:
    """Mean and sample standard deviation of each strategy's metric per size, over its successful seeds, in run order."""
    groups: dict[tuple[str, int | None, int | None], list[ComparisonRow]] = {}
    for row in rows:
        groups.setdefault((row.strategy, row.train_size, row.per_class), []).append(row)
    return [_aggregate(*key, group) for key, group in groups.items()]


def _aggregate(strategy: str, train_size: int | None, per_class: int | None, group: list[ComparisonRow]) -> AggregateRow:
    """The aggregate of one strategy's runs at one size (``group``, one per seed)."""
    done = [r for r in group if r.value is not None]
    values = [float(r.value) for r in done if r.value is not None]
    validation = [float(r.validation) for r in done if r.validation is not None]
    known = bool(done) and len(validation) == len(done)  # a mean over some seeds only would not compare
    return AggregateRow(
        strategy=strategy,
        train_size=train_size,
        per_class=per_class,
        train_examples=max((r.train_examples for r in done), default=0),
        metric=done[0].metric if done else "",
        split=done[0].split if done else "",
        mean=statistics.mean(values) if values else None,
        std=statistics.stdev(values) if len(values) >= 2 else None,
        seeds=len(done),
        failed=len(group) - len(done),
        validation_mean=statistics.mean(validation) if known else None,
        validation_std=statistics.stdev(validation) if known and len(validation) >= 2 else None,
    )


def size_text(row: AggregateRow) -> str:
    """A size in words: ``8 per class``, ``100 training examples``, ``all training examples``."""
    if row.per_class is not None:
        return f"{row.per_class} per class"
    return f"{row.train_size or 'all'} training examples"


def _mean_text(mean: float, std: float | None) -> str:
    """``0.8125 ± 0.0340``, or ``0.8125`` without a spread."""
    return f"{mean:.{DIGITS}f}" + ("" if std is None else f" ± {std:.{DIGITS}f}")


def _reports_another_split(row: AggregateRow) -> bool:
    """Whether the row reports a split other than validation (test) and knows its validation mean too."""
    return row.split != "validation" and row.validation_mean is not None


def spread_text(row: AggregateRow) -> str:
    """``0.8125 ± 0.0340 over 5 seeds`` (``, 1 failed`` when runs failed); one seed has no spread.

    A row that reports test gives validation first: ``validation 0.8200 ± 0.0300, test 0.8125 ± 0.0340 over 5 seeds``.
    """
    if row.mean is None:
        return f"no successful run, {row.failed} failed"
    value = _mean_text(row.mean, row.std)
    if _reports_another_split(row):
        value = f"validation {_mean_text(float(row.validation_mean or 0.0), row.validation_std)}, {row.split} {value}"
    text = f"{value} over {row.seeds} seed{'s' if row.seeds != 1 else ''}"
    return text + (f", {row.failed} failed" if row.failed else "")


def on_validation(rows: Sequence[AggregateRow]) -> bool:
    """Whether a recommendation over ``rows`` ranks on validation: every successful row reports test and knows validation.

    A strategy is chosen on validation and test only reports how the choice did, so test never picks; rows that
    report validation itself (a run without a test split) rank on it as reported.
    """
    done = [r for r in rows if r.mean is not None]
    return bool(done) and all(_reports_another_split(r) for r in done)


def _choice(row: AggregateRow, validation: bool) -> tuple[float, float]:
    """The mean a ranking compares (to the report's precision: equal means are a tie) and its spread (one seed: widest)."""
    mean, std = (row.validation_mean, row.validation_std) if validation else (row.mean, row.std)
    return round(float(mean or 0.0), DIGITS), math.inf if std is None else std


def _ranked(rows: Sequence[AggregateRow], validation: bool) -> list[AggregateRow]:
    """Successful strategies best first: by mean (on validation when ``validation``), then smaller spread, then run order."""
    done = [r for r in rows if r.mean is not None]
    sign = 1 if done and lower_is_better(done[0].metric) else -1
    keys = {id(r): _choice(r, validation) for r in done}
    return sorted(done, key=lambda r: (sign * keys[id(r)][0], keys[id(r)][1]))


def recommendation(rows: Sequence[AggregateRow], runs: Sequence[ComparisonRow] = ()) -> str:
    """The line for one size: the strategy with the best mean, the next best, ties and negative transfer said.

    ``rows`` are the aggregates of one size. It ranks on validation where the runs report test (:func:`on_validation`)
    and gives both. The from-scratch baseline is never recommended, only noted when it beats the pick. With the
    ``runs`` behind them, the line adds the pick's lead over the next best paired by seed (:func:`lead_text`).
    """
    validation = on_validation(rows)
    where = f"at {size_text(rows[0])}" + (" (ranked on validation)" if validation else "")
    ranked = _ranked([r for r in rows if r.strategy != SCRATCH], validation)
    if not ranked:
        return f"{where}: no strategy has a successful run ({sum(r.failed for r in rows)} failed)"
    best = ranked[0]
    line = f"{where}: use {best.strategy} ({spread_text(best)})"
    pick = _choice(best, validation)
    runner_up = _choice(ranked[1], validation) if len(ranked) > 1 else None
    if runner_up is not None and runner_up[0] == pick[0]:
        reason = "for its smaller spread" if pick[1] < runner_up[1] else "as listed first"
        mean = "validation mean" if validation else "mean"
        line += f", tied on the {mean} with {ranked[1].strategy} ({spread_text(ranked[1])}), picked {reason}"
    elif len(ranked) > 1:
        line += f"; next best {ranked[1].strategy} ({spread_text(ranked[1])})"
    if len(ranked) > 1 and runs:
        line += lead_text(best, ranked[1], runs, validation=validation)
    scratch = next((r for r in rows if r.strategy == SCRATCH and r.mean is not None), None)
    if scratch is not None and scores_better(_choice(scratch, validation)[0], pick[0], best.metric):
        line += f"; {SCRATCH} scores better ({spread_text(scratch)}): negative transfer"
    return line


def recommendations(rows: Sequence[AggregateRow], runs: Sequence[ComparisonRow] = ()) -> list[str]:
    """One :func:`recommendation` line per size, in run order (``runs``: the runs behind ``rows``)."""
    sizes: dict[tuple[int | None, int | None], list[AggregateRow]] = {}
    for row in rows:
        sizes.setdefault((row.train_size, row.per_class), []).append(row)
    return [recommendation(group, runs) for group in sizes.values()]


def _runs_of(row: AggregateRow, runs: Sequence[ComparisonRow]) -> list[ComparisonRow]:
    """The successful runs behind one aggregate row."""
    key = (row.strategy, row.train_size, row.per_class)
    return [r for r in runs if r.value is not None and (r.strategy, r.train_size, r.per_class) == key]


def lead_text(best: AggregateRow, other: AggregateRow, runs: Sequence[ComparisonRow], *, validation: bool = False) -> str:
    """``best``'s lead over ``other`` paired by seed, whether the seeds separate them, and their training times.

    The pairs are the runs' validation scores when ``validation`` (what chose ``best``), else their reported ones.
    Empty with fewer than two seeds in common: one difference has no spread to judge it by.
    """
    from nlp_transfer.evaluation.paired import CONFIDENCE, paired_lead

    mine, theirs = _runs_of(best, runs), _runs_of(other, runs)

    def score(run: ComparisonRow) -> float:
        return float((run.validation if validation else run.value) or 0.0)

    lead = paired_lead(
        {r.seed: score(r) for r in mine}, {r.seed: score(r) for r in theirs}, lower_is_better=lower_is_better(best.metric)
    )
    if lead is None or lead.low is None or lead.high is None:
        return ""
    verdict = "the seeds separate them" if lead.separated else "within what the seeds move, either will do"
    if lead.same_every_seed and not lead.separated:
        verdict = "the same difference on every seed, too few seeds to tell them apart (6 would)"
    mean, low, high = (f"{round(v, DIGITS) + 0.0:.{DIGITS}f}" for v in (lead.mean, lead.low, lead.high))  # no "-0.0000"
    # a seed that failed for one of them leaves fewer pairs than means: the pairs can then disagree with the means
    common = f" on the {lead.seeds} seeds both finished" if lead.seeds < max(len(mine), len(theirs)) else ""
    behind = round(lead.mean, DIGITS) < 0
    verb = f"trails {other.strategy} by" if behind else "leads by"
    text = (
        f"; paired by seed{' on validation' if validation else ''}{common}, {best.strategy} {verb} "
        f"{mean.lstrip('-') if behind else mean} ({CONFIDENCE:.0%} interval {low} to {high}, "
        f"{lead.seeds} seeds): {verdict}"
    )
    seconds = statistics.median(r.train_seconds for r in mine), statistics.median(r.train_seconds for r in theirs)
    if min(seconds) > 0:
        text += f"; {other.strategy} trains in {seconds[1] / seconds[0]:.2f}x {best.strategy}'s time (medians)"
    return text


def aggregate_table(rows: Sequence[AggregateRow]) -> str:
    """The aggregate as a Markdown table: one row per strategy and size; validation's column first where rows report test."""
    done = next((r for r in rows if r.mean is not None), None)
    metric = f"{done.split} {done.metric}" if done else "metric"
    both = any(_reports_another_split(r) for r in rows)
    first = f"validation {done.metric}: mean ± std | " if both and done else ""
    lines = [
        f"| strategy | size | train examples | {first}{metric}: mean ± sample std (ddof=1) | seeds | failed |",
        "|---" * (7 if first else 6) + "|",
    ]
    for r in rows:
        value = "**failed**" if r.mean is None else _mean_text(r.mean, r.std)
        if first:
            known = r.mean is not None and r.validation_mean is not None
            value = (_mean_text(float(r.validation_mean or 0.0), r.validation_std) if known else "") + f" | {value}"
        lines.append(f"| {r.strategy} | {size_text(r)} | {r.train_examples} | {value} | {r.seeds} | {r.failed} |")
    return "\n".join(lines)
