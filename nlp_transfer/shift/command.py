"""``nlp-transfer shift SOURCE TARGET``: read both sides, measure, write the report."""

from __future__ import annotations

from pathlib import Path

from nlp_transfer.shift.measure import DEFAULT_SAMPLE, ShiftReport, domain_shift
from nlp_transfer.shift.report import write_report
from nlp_transfer.shift.sources import is_adapt_run, is_run_dir, read_text_file, run_training_texts


def default_output_dir(target: str | Path) -> Path:
    """``TARGET-shift`` beside the target file, its extension dropped (``data/kitchen.tsv`` -> ``data/kitchen-shift``)."""
    path = Path(target)
    return path.with_name(f"{path.stem}-shift")


def run_shift(
    source: str | Path,
    target: str | Path,
    *,
    model: str | None = None,
    sample: int = DEFAULT_SAMPLE,
    output_dir: str | Path | None = None,
    text_column: str = "text",
    encoding: str = "utf-8",
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[ShiftReport, dict[str, Path]]:
    """Compare ``target`` (a text file) with ``source`` (a text file or a saved run) and write the report files."""
    run_dir = source if is_run_dir(source) else None
    if run_dir is not None:
        source_texts = run_training_texts(run_dir)
        if is_adapt_run(run_dir):  # an encoder with no task head: it embeds the texts, and has no labels to shift
            model, run_dir = model or str(run_dir), None
    else:
        source_texts = read_text_file(source, text_column=text_column, encoding=encoding)
    target_texts = read_text_file(target, text_column=text_column, encoding=encoding)
    report = domain_shift(
        source_texts,
        target_texts,
        model=model,
        run_dir=run_dir,
        sample=sample,
        seed=seed,
        batch_size=batch_size,
        source_name=str(source),
        target_name=str(target),
    )
    paths = write_report(report, Path(output_dir) if output_dir else default_output_dir(target))
    return report, paths
