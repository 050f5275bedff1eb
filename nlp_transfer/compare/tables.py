"""The per-run Markdown table, and negative transfer flagged against the baseline at the same size and seed."""

from __future__ import annotations

from collections.abc import Sequence

from nlp_transfer.compare.rows import SCRATCH, ComparisonRow, scores_better


def flag_negative_transfer(rows: list[ComparisonRow], baseline: str = SCRATCH) -> None:
    """Mark each row that scores worse than the ``baseline`` label's run of the same size and seed (failed runs: never).

    ``baseline`` is the from-scratch run by default; ``nlp-transfer compare --baseline LABEL`` names another, e.g.
    the base model beside models adapted to a domain (an adaptation that scores below it hurt).
    """
    runs = {(r.train_size, r.per_class, r.seed): r for r in rows if r.strategy == baseline and r.value is not None}
    for row in rows:
        base = runs.get((row.train_size, row.per_class, row.seed))
        flagged = not (base is None or row.strategy in (baseline, SCRATCH) or row.value is None or base.value is None)
        row.negative_transfer = flagged and scores_better(base.value, row.value, row.metric)  # type: ignore[union-attr]
        row.below = baseline if row.negative_transfer else ""


def _parameter_share(count: int, total: int) -> str:
    return f"{count:,} ({100 * count / max(total, 1):.2f}%)"


def _extra_columns(rows: Sequence[ComparisonRow]) -> list[tuple[str, str]]:
    """(header, ComparisonRow field) of the columns a comparison over sizes per class or several seeds adds."""
    if any(r.per_class is not None for r in rows):
        return [("per class", "per_class"), ("sample seed", "seed")]
    return [("seed", "seed")] if len({r.seed for r in rows}) > 1 else []


def _markdown_row(r: ComparisonRow, extra: Sequence[tuple[str, str]] = ()) -> str:
    """One run as a Markdown table row; a failed run shows the size it asked for, and its error in place of the metric."""
    cells = "".join(f" {getattr(r, field)} |" for _, field in extra)
    if r.value is None:
        error = (r.error or "failed").replace("|", "\\|")
        asked = f"{r.per_class} per class" if r.per_class is not None else r.train_size or "all"
        return (
            f"| {r.strategy} |{cells} {asked} | {r.epochs} | {r.learning_rate:g} | **failed**: {error} | | "
            f"{r.train_seconds:.1f} | {r.peak_memory_mb:,.0f} | |"
        )
    metric = f"{r.split} {r.metric} {r.value:.4f}"
    if r.split != "validation" and r.validation is not None:
        metric += f" (validation {r.validation:.4f})"
    trainable = _parameter_share(r.trainable_parameters, r.total_parameters)
    if r.trainable_parameters_end and r.trainable_parameters_end != r.trainable_parameters:
        trainable += " at the start, " + _parameter_share(r.trainable_parameters_end, r.total_parameters) + " at the end"
    return (
        f"| {r.strategy} |{cells} {r.train_examples} | {r.epochs} | {r.learning_rate:g} | {metric} | "
        f"{trainable} | {r.train_seconds:.1f} | {r.peak_memory_mb:,.0f} | "
        f"{f'**yes** (below {r.below or SCRATCH})' if r.negative_transfer else ''} |"
    )


def markdown_table(rows: Sequence[ComparisonRow]) -> str:
    """The comparison as a Markdown table, one row per run (with its size per class and seed when those vary)."""
    extra = _extra_columns(rows)
    headers = "".join(f" {header} |" for header, _ in extra)
    lines = [
        f"| strategy |{headers} train size | epochs | learning rate | metric | trainable params | train time (s) | "
        "peak memory (MB) | negative transfer |",
        "|---" * (9 + len(extra)) + "|",
    ]
    return "\n".join(lines + [_markdown_row(r, extra) for r in rows])
