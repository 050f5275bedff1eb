"""``nlp-transfer rank``: score candidate source models on a sample of the run's data, before any training.

Each candidate encodes the same sample of the training split once (variants of one model share one pass:
their features are read off the same hidden states); the estimators score its frozen features against the
labels (:mod:`nlp_transfer.rank.estimators`). The report is a table (score per estimator, encoding time,
parameters), ``rank.json``, ``rank.md`` and a plot, and names the candidate with the best score of the chosen
estimator. A candidate that fails to load or encode is reported
with its error and the others still rank.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nlp_transfer.config import RunConfig
from nlp_transfer.errors import UserError
from nlp_transfer.rank.candidates import Candidate, CandidateFeatures, encode_candidate, encode_shared
from nlp_transfer.rank.estimators import ESTIMATORS, score_features
from nlp_transfer.threads import restores_torch_threads

#: the estimator that names the recommended candidate unless told otherwise
DEFAULT_RECOMMEND_BY = "logme"


@dataclass
class RankRow:
    """One candidate's scores (estimator -> value), cost, and error if it could not be scored."""

    name: str
    scores: dict[str, float] = field(default_factory=dict)
    encode_seconds: float | None = None
    parameters: int | None = None
    layers: int | None = None
    #: how many candidates shared the encoding pass (encode_seconds is this candidate's equal share)
    encode_shared_by: int = 1
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The row as ``rank.json`` writes it: estimator scores at the top level."""
        row = asdict(self)
        return {"name": row.pop("name"), **row.pop("scores"), **row}


def sample_split(split: Any, size: int, seed: int) -> Any:
    """A seeded random sample of ``size`` rows of a ``datasets.Dataset`` (all of it when smaller)."""
    if len(split) <= size:
        return split
    return split.shuffle(seed=seed).select(range(size))


def check_sample(sample: Any) -> None:
    """Refuse a sample with fewer than two classes: no estimator can tell anything from it."""
    if "tags" in sample.column_names:
        classes = {tag for tags in sample["tags"][:] for tag in tags}
    else:
        labels = sample["label"][:]
        classes = {label for value in labels for label in (value if isinstance(value, list) else [value])}
    if len(classes) < 2:
        raise UserError(
            f"the ranking sample ({len(sample)} rows) has {len(classes)} class ({', '.join(map(str, classes)) or 'none'}); "
            "give more rows (--sample) or check data.label_column."
        )


def score_candidate(
    candidate: Candidate, task: Any, sample: Any, config: RunConfig, estimators: Sequence[str], device: Any
) -> RankRow:
    """Encode ``sample`` with ``candidate`` and score the features; a failure becomes the row's error."""
    try:
        encoded = encode_candidate(
            candidate, task, sample, batch_size=config.training.eval_batch_size, device=device, seed=config.seed
        )
    except UserError as err:
        return RankRow(candidate.name, error=str(err))
    except Exception as err:  # a corrupt file, an odd architecture: this candidate fails, the others still rank
        return RankRow(candidate.name, error=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
    return scored_row(candidate, encoded, task, sample, config, estimators)


def scored_row(
    candidate: Candidate, encoded: CandidateFeatures, task: Any, sample: Any, config: RunConfig, estimators: Sequence[str]
) -> RankRow:
    """The estimators' scores of one candidate's encoded features, as a table row."""
    metric = "f1_macro" if "tags" in sample.column_names else "f1_micro" if task.multi_label else "accuracy"
    scores = score_features(
        encoded.features,
        encoded.labels,
        multi_label=task.multi_label,
        metric=metric,
        seed=config.seed,
        estimators=list(estimators),
    )
    return RankRow(candidate.name, scores, encoded.encode_seconds, encoded.parameters, encoded.layers, encoded.shared_by)


def encoding_groups(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """The candidates that one pass can encode together: variants of one model with one ``init``, in first-seen order."""
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.model, candidate.init), []).append(candidate)
    return list(groups.values())


def score_group(
    group: Sequence[Candidate], task: Any, sample: Any, config: RunConfig, estimators: Sequence[str], device: Any
) -> list[RankRow]:
    """Rows for variants of one model, encoded in one pass; one at a time where that cannot be (each keeps its own error)."""
    if len(group) > 1:
        try:
            encoded = encode_shared(
                group, task, sample, batch_size=config.training.eval_batch_size, device=device, seed=config.seed
            )
            return [scored_row(c, e, task, sample, config, estimators) for c, e in zip(group, encoded, strict=True)]
        except Exception:  # a bad variant, a norm after the layer stack, a model that fails to load: one at a time
            pass
    return [score_candidate(c, task, sample, config, estimators, device) for c in group]


def recommend(rows: Sequence[RankRow], by: str) -> str | None:
    """The name of the scored candidate with the highest ``by`` score (None when none was scored)."""
    scored = [r for r in rows if r.error is None and math.isfinite(r.scores.get(by, math.nan))]
    return max(scored, key=lambda r: r.scores[by]).name if scored else None


def markdown_table(rows: Sequence[RankRow], estimators: Sequence[str], recommended: str | None, by: str | None = None) -> str:
    """The ranking as a Markdown table, best first by ``by`` (the estimator that recommends, its column first) or else
    the first estimator, failures last."""
    if by is not None and any(by in row.scores for row in rows):  # not when every candidate failed
        estimators = [by, *(e for e in estimators if e != by)]
    head = "| candidate | " + " | ".join(estimators) + " | encode s | parameters | layers |"
    lines = [head, "|" + "---|" * (len(estimators) + 4)]
    first = estimators[0]
    ordered = sorted(rows, key=lambda r: (r.error is not None, -r.scores.get(first, -math.inf)))
    for row in ordered:
        name = f"**{row.name}** (recommended)" if row.name == recommended else row.name
        if row.error is not None:
            lines.append(f"| {name} | failed: {row.error} |" + " |" * (len(estimators) + 2))
            continue
        values = " | ".join(f"{row.scores[e]:.4f}" for e in estimators)
        lines.append(f"| {name} | {values} | {row.encode_seconds:.1f} | {row.parameters:,} | {row.layers} |")
    return "\n".join(lines)


def write_report(
    rows: Sequence[RankRow], output_dir: Path, *, estimators: Sequence[str], by: str, meta: dict[str, Any]
) -> dict[str, Path]:
    """Write ``rank.json``, ``rank.md`` and ``rank.png`` under ``output_dir``; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    recommended = recommend(rows, by)
    paths = {name: output_dir / name for name in ("rank.json", "rank.md", "rank.png")}
    report = {"candidates": [r.as_json() for r in rows], "recommended": recommended, "recommended_by": by, **meta}
    paths["rank.json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["rank.md"].write_text(markdown_table(rows, estimators, recommended, by) + "\n", encoding="utf-8")
    plot_ranking([r for r in rows if r.error is None], estimators, paths["rank.png"])
    return paths


def plot_ranking(rows: Sequence[RankRow], estimators: Sequence[str], path: Path) -> None:
    """One panel per estimator: each candidate's score as a horizontal bar."""
    from nlp_transfer.evaluation.plots import new_figure, save_figure

    fig, axes = new_figure(
        nrows=1, ncols=len(estimators), figsize=(3.2 * len(estimators), 0.45 * len(rows) + 1.6), sharey=True, squeeze=False
    )
    names = [r.name for r in rows]
    for ax, estimator in zip(axes[0], estimators, strict=True):
        ax.barh(names, [r.scores[estimator] for r in rows])
        ax.set_title(estimator)
    axes[0][0].invert_yaxis()
    fig.suptitle("Candidates ranked on frozen features")
    save_figure(fig, path, dpi=110)


def default_output_dir(config: RunConfig) -> Path:
    """Where a ranking's report goes unless told: ``OUTPUT_DIR-rank``."""
    return Path(f"{config.output_dir.rstrip('/')}-rank")


@restores_torch_threads
def run_ranking(
    config: RunConfig,
    candidates: Sequence[Candidate],
    *,
    sample_size: int = 2000,
    estimators: Sequence[str] | None = None,
    recommend_by: str = DEFAULT_RECOMMEND_BY,
    output_dir: Path | None = None,
) -> tuple[list[RankRow], str | None, dict[str, Path]]:
    """Score every candidate on one sample of the run's training split; returns the rows, the pick and the report paths."""
    import torch

    from nlp_transfer.models import resolve_model
    from nlp_transfer.tasks import build_task_and_data
    from nlp_transfer.training.accelerator import process_state

    estimators = list(estimators or ESTIMATORS)
    unknown = [e for e in [*estimators, recommend_by] if e not in ESTIMATORS]
    if unknown:
        raise UserError(f"unknown estimator '{unknown[0]}'; choose from {', '.join(ESTIMATORS)}.")
    if recommend_by not in estimators:
        estimators.append(recommend_by)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output {output_dir}: an existing file; the report is a folder (rank.json, rank.md, rank.png).")
    for candidate in candidates:  # an unknown id fails here, before anything is encoded
        resolve_model(candidate.model)
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    task, data = build_task_and_data(config)
    sample = sample_split(data.splits["train"], sample_size, config.seed)
    check_sample(sample)
    device = process_state().device
    scored: dict[str, RankRow] = {}
    for group in encoding_groups(candidates):
        for row in score_group(group, task, sample, config, estimators, device):
            scored[row.name] = row
            print(f"rank: {row.name}: " + (row.error or ", ".join(f"{e} {row.scores[e]:.4f}" for e in estimators)))
    rows = [scored[c.name] for c in candidates]
    if all(r.error is not None for r in rows):  # each error is printed above; the message says so once
        raise UserError(f"no candidate could be scored ({len(rows)} failed, each with its reason above); fix them and rerun.")
    meta = {"task": config.task, "sample": len(sample), "estimators": estimators}
    paths = write_report(rows, output_dir or default_output_dir(config), estimators=estimators, by=recommend_by, meta=meta)
    return rows, recommend(rows, recommend_by), paths
