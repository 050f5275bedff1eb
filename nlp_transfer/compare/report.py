"""The report files, ``compare.json``, ``compare.md`` and ``compare.png``, written after every run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nlp_transfer.compare.rows import MEMORY_NOTES, REPORT_FILES, SCRATCH, ComparisonRow
from nlp_transfer.compare.seeds import AggregateRow, aggregate_rows, aggregate_table, recommendations, several_seeds
from nlp_transfer.compare.tables import markdown_table
from nlp_transfer.files import write_together


@dataclass
class ReportContext:
    """What the rows alone do not say: how many runs the comparison plans, and which label is the baseline."""

    planned: int | None = None  #: runs the comparison will make; fewer rows: the report is incomplete
    baseline: str | None = SCRATCH  #: the label negative transfer is judged against; None: no baseline run


def write_report(rows: Sequence[ComparisonRow], output_dir: str | Path, context: ReportContext | None = None) -> dict[str, Path]:
    """Write compare.json, compare.md and compare.png into ``output_dir``; returns their paths.

    Both give a recommendation per size, chosen on validation where the runs report test. Over seeds
    (:func:`several_seeds`) they add the aggregate per strategy and size, and the png draws the mean with a
    band of one standard deviation. A report with fewer rows than ``context.planned`` says it is incomplete.
    """
    context = context or ReportContext()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in REPORT_FILES}
    kinds = list(dict.fromkeys(r.memory_kind for r in rows))
    complete = context.planned is None or len(rows) >= context.planned
    payload: dict[str, Any] = {
        "rows": [asdict(r) for r in rows],
        "memory": kinds[0] if len(kinds) == 1 else kinds,
        "baseline": context.baseline,
        "planned_runs": context.planned,
        "complete": complete,
    }
    text = (
        ""
        if complete
        else (
            f"**Incomplete: {len(rows)} of {context.planned} runs so far** (the comparison is running, or was stopped): "
            "the recommendations cover the finished runs only.\n\n"
        )
    )
    text += markdown_table(rows) + "\n\n" + _notes(kinds, context.baseline) + "\n"
    aggregates = aggregate_rows(rows)
    lines = recommendations(aggregates, rows)
    payload["recommendations"] = lines
    advice = "".join(f"- {line}\n" for line in lines)
    if several_seeds(rows):
        payload["aggregate"] = [asdict(a) for a in aggregates]
        text += (
            "\n## Over seeds\n\nSeeds: the sample seed (data.sample_seed) of runs with examples per class, else the "
            "run's seed; failed runs are counted, not averaged.\n\n" + aggregate_table(aggregates) + "\n\n" + advice
        )
        plot_curve(aggregates, paths["compare.png"])
    else:
        text += "\n## Recommendation\n\nOne run a strategy and size: no spread to judge a lead by.\n\n" + advice
        plot_comparison([r for r in rows if r.value is not None], paths["compare.png"])
    body = json.dumps(payload, indent=2)
    write_together(  # both whole or neither (the png was replaced whole, or the old one kept, above)
        {
            paths["compare.json"]: lambda partial: partial.write_text(body, encoding="utf-8"),
            paths["compare.md"]: lambda partial: partial.write_text(text, encoding="utf-8"),
        }
    )
    return paths


def _notes(kinds: Sequence[str], baseline: str | None) -> str:
    """The notes under the table: what peak memory measured, and what negative transfer was judged against."""
    memory = "Peak memory: " + "; ".join(f"{kind}: {MEMORY_NOTES.get(kind, kind)}" for kind in kinds)
    if baseline is None:
        negative = "Negative transfer: not checked (no baseline run: --no-scratch without --baseline LABEL)."
    else:
        named = "the from-scratch run" if baseline == SCRATCH else baseline
        negative = f"Negative transfer: the run scored below the baseline ({named}) at the same training size and seed."
    return f"{memory}. Each run trains in a process of its own. {negative}"


def plot_comparison(rows: Sequence[ComparisonRow], path: Path) -> None:
    """Metric against training size per strategy (a line each), or bars when there is one size."""
    from nlp_transfer.evaluation.plots import new_figure, save_figure

    fig, ax = new_figure(figsize=(6.4, 4.2))
    strategies = list(dict.fromkeys(r.strategy for r in rows))
    sizes = sorted({r.train_examples for r in rows})
    if len(sizes) > 1:
        for name in strategies:
            points = sorted((r.train_examples, r.value) for r in rows if r.strategy == name)
            style = "--" if name == SCRATCH else "-"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=name)
        negative = [r for r in rows if r.negative_transfer]
        if negative:
            ax.scatter(
                [r.train_examples for r in negative],
                [r.value for r in negative],
                marker="x",
                s=80,
                color="red",
                zorder=3,
                label="negative transfer",
            )
        ax.set_xscale("log")
        ax.set_xlabel("training examples")
        ax.legend()
    else:
        ax.bar(strategies, [next(r.value for r in rows if r.strategy == s) for s in strategies])
        ax.set_xlabel("strategy")
    if rows:
        ax.set_ylabel(f"{rows[0].split} {rows[0].metric}")
    ax.set_title("Transfer strategies compared")
    save_figure(fig, path, dpi=120)


def plot_curve(rows: Sequence[AggregateRow], path: Path) -> None:
    """Mean metric against size per strategy with a band of one standard deviation, or bars with error bars at one size.

    The x axis is examples per class (log2) for a few-shot curve, training examples (log10) otherwise.
    """
    from nlp_transfer.evaluation.plots import new_figure, save_figure

    done = [r for r in rows if r.mean is not None]
    per_class = any(r.per_class is not None for r in done)

    def x(row: AggregateRow) -> int:
        return row.per_class if per_class and row.per_class is not None else row.train_examples

    fig, ax = new_figure(figsize=(6.4, 4.2))
    strategies = list(dict.fromkeys(r.strategy for r in done))
    sizes = sorted({x(r) for r in done})
    if len(sizes) > 1:
        for name in strategies:
            curve = sorted((x(r), float(r.mean or 0), r.std or 0.0) for r in done if r.strategy == name)
            xs = [c[0] for c in curve]
            lows, means, highs = ([c[1] + sign * c[2] for c in curve] for sign in (-1, 0, 1))
            (line,) = ax.plot(xs, means, "--" if name == SCRATCH else "-", marker="o", label=name)
            ax.fill_between(xs, lows, highs, alpha=0.2, color=line.get_color())
        ax.set_xscale("log", base=2 if per_class else 10)
        if per_class:
            ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.set_xlabel("training examples per class" if per_class else "training examples")
        ax.legend()
    else:
        ax.bar(strategies, [float(r.mean or 0) for r in done], yerr=[r.std or 0.0 for r in done], capsize=4)
        ax.set_xlabel("strategy")
    if done:
        ax.set_ylabel(f"{done[0].split} {done[0].metric} (mean ± sample std over seeds)")
    ax.set_title("Transfer strategies compared over seeds")
    save_figure(fig, path, dpi=120)
