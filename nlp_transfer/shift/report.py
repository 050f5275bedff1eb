"""The shift report: readable text, ``shift.json`` and ``shift.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.files import write_together
from nlp_transfer.shift.measure import ShiftReport


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {_percent(share)}" for name, share in shares.items())


def render_text(report: ShiftReport) -> str:
    """The report as a few readable lines."""
    texts, vocab, tok = report.texts, report.vocabulary, report.tokenizer
    src, tgt = tok["source"], tok["target"]
    lines = [
        f"source: {report.source} ({texts['source']:,} texts)",
        f"target: {report.target} ({texts['target']:,} texts)",
        f"compared: {texts['compared_per_side']:,} texts a side, embeddings of {report.model}",
        f"domain classifier accuracy {report.domain_classifier_accuracy:.3f} "
        f"({len(report.fold_accuracies)}-fold held out, chance 0.5)",
        f"proxy A-distance {report.proxy_a_distance:.3f} (0: cannot be told apart, 2: always told apart)",
        f"word types: Jaccard {vocab['jaccard_word_types']:.3f}; target word tokens unseen in source "
        f"{_percent(vocab['target_tokens_unseen_in_source'])} ({_percent(vocab['target_types_unseen_in_source'])} of types)",
        f"tokenizer unknown tokens: source {_percent(src['unknown_token_rate'])}, target {_percent(tgt['unknown_token_rate'])}; "
        f"subwords per word: source {src['subwords_per_word']:.2f}, target {tgt['subwords_per_word']:.2f}",
        f"length in tokens (median / p90): source {src['length_tokens']['median']:.0f} / {src['length_tokens']['p90']:.0f}, "
        f"target {tgt['length_tokens']['median']:.0f} / {tgt['length_tokens']['p90']:.0f}",
    ]
    if report.label_shift is not None:
        shift = report.label_shift
        lines += [
            f"predicted labels on source: {_shares(shift['source_shares'])}",
            f"predicted labels on target: {_shares(shift['target_shares'])}",
            f"label shift: total variation {shift['total_variation']:.3f}; most moved: {shift['most_moved_label'] or 'none'}",
        ]
    return "\n".join(lines)


def write_json(report: ShiftReport, path: Path) -> None:
    """``report.to_dict()`` as indented JSON."""
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")


def write_plot(report: ShiftReport, path: Path) -> None:
    """Three panels: token lengths, held-out domain-classifier scores, and a 2-D PCA projection of the embeddings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    try:
        _draw_panels(report, axes)
        figure.tight_layout()
        figure.savefig(path, dpi=100, format="png")
    finally:
        plt.close(figure)


def _draw_panels(report: ShiftReport, axes: Any) -> None:
    """Draw the three panels of :func:`write_plot` on ``axes``."""
    _length_panel(axes[0], report.lengths)
    size = report.texts["compared_per_side"]
    sides = {"source": slice(0, size), "target": slice(size, 2 * size)}
    if report.target_probability is not None:
        for name, rows in sides.items():
            axes[1].hist(report.target_probability[rows], bins=np.linspace(0, 1, 21), alpha=0.6, label=name)
        axes[1].set(
            title=f"domain classifier (held out), accuracy {report.domain_classifier_accuracy:.2f}",
            xlabel="P(target)",
            ylabel="texts",
        )
        axes[1].legend()
    if report.projection is not None:
        for name, rows in sides.items():
            axes[2].scatter(*report.projection[rows].T, s=6, alpha=0.5, label=name)
        axes[2].set(title=f"embeddings, PCA (PAD {report.proxy_a_distance:.2f})", xlabel="PC 1", ylabel="PC 2")
        axes[2].legend()


def _length_panel(axis: Any, lengths: dict[str, list[int]]) -> None:
    """Overlaid histograms of the two sides' lengths in tokens (the longest 1 % left out of the range)."""
    every = np.concatenate([np.asarray(v) for v in lengths.values()]) if lengths else np.zeros(1)
    top = max(2.0, float(np.percentile(every, 99)))
    bins = np.linspace(0, top, 31)
    for name, values in lengths.items():
        axis.hist(np.clip(values, 0, top), bins=bins, alpha=0.6, label=name)
    axis.set(title="length in tokens", xlabel="tokens", ylabel="texts")
    axis.legend()


def write_report(report: ShiftReport, output_dir: str | Path) -> dict[str, Path]:
    """Write ``shift.json`` and ``shift.png`` into ``output_dir`` (created); their paths by name.

    Both are written beside their place and moved in together once both are whole: a failed write (a full disk, a
    file-size limit) keeps the earlier pair as it was, never a new json beside an old or cut plot.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"shift.json": output_dir / "shift.json", "shift.png": output_dir / "shift.png"}
    write_together(
        {
            paths["shift.png"]: lambda partial: write_plot(report, partial),
            paths["shift.json"]: lambda partial: write_json(report, partial),
        }
    )
    return paths
