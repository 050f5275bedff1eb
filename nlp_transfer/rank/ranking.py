"""``nlp-transfer rank``: score candidate source models on a sample of the run's data, before any training.

Each candidate encodes the same sample of the training split once (variants of one model share one pass:
their features are read off the same hidden states); the estimators score its frozen features against the
labels (:mod:`nlp_transfer.rank.estimators`). The report is a table (score per estimator, encoding time,
parameters), ``rank.json``, ``rank.md`` and a plot, and names the candidate with the best score of the chosen
estimator. A candidate that cannot be found, loaded or encoded, or whose features are not finite, is reported
with its error and the others still rank; an estimator that cannot score a candidate leaves that one cell failed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.config import RunConfig
from nlp_transfer.errors import UserError
from nlp_transfer.rank.candidates import Candidate, CandidateFeatures, encode_candidate, encode_shared, features_key
from nlp_transfer.rank.estimators import ESTIMATORS, error_line, score_features
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
    #: estimator -> why it could not score this candidate (its score is NaN; the other estimators' stand)
    estimator_errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row as ``rank.json`` writes it: estimator scores at the top level, a failed estimator's as null."""
        row = asdict(self)
        scores = {k: v if math.isfinite(v) else None for k, v in row.pop("scores").items()}
        return {"name": row.pop("name"), **scores, **row}


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
        return RankRow(candidate.name, error=error_line(err))
    return scored_row(candidate, encoded, task, sample, config, estimators)


def scored_row(
    candidate: Candidate, encoded: CandidateFeatures, task: Any, sample: Any, config: RunConfig, estimators: Sequence[str]
) -> RankRow:
    """The estimators' scores of one candidate's encoded features, as a table row.

    Features no estimator can take (NaN from a broken model, say) make the row's error; an estimator that fails on
    its own scores NaN with its reason in ``estimator_errors``, and the others' scores stand.
    """
    metric = "f1_macro" if "tags" in sample.column_names else "f1_micro" if task.multi_label else "accuracy"
    bad_rows = int(np.count_nonzero(~np.isfinite(encoded.features).all(axis=1))) if encoded.features.ndim == 2 else 0
    if bad_rows:
        return RankRow(
            candidate.name,
            error=f"its features hold NaN or infinite values in {bad_rows} of {len(encoded.features)} rows: the model's "
            "weights or outputs are broken (a NaN weight, half-precision overflow); check that it runs in float32",
        )
    failures: dict[str, str] = {}
    try:
        scores = score_features(
            encoded.features,
            encoded.labels,
            multi_label=task.multi_label,
            metric=metric,
            seed=config.seed,
            estimators=list(estimators),
            failures=failures,
        )
    except Exception as err:  # this candidate's features are unusable: its row fails, the others still rank
        return RankRow(candidate.name, error=error_line(err))
    row = RankRow(candidate.name, scores, encoded.encode_seconds, encoded.parameters, encoded.layers, encoded.shared_by)
    row.estimator_errors = failures
    return row


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


def resolve_candidates(candidates: Sequence[Candidate], *, token_level: bool) -> dict[str, str]:
    """Find every candidate's model; returns ``{name: reason}`` for those that cannot be found (their rows fail).

    Two candidates that would give the same row (one folder written two ways, ``layer=`` its last layer, ...)
    are refused, as is a list where no candidate can be found (its first reason, one line).
    """
    from nlp_transfer.models import resolve_model

    paths: dict[str, str] = {}
    failed: dict[str, str] = {}
    seen: dict[tuple[Any, ...], Candidate] = {}
    for candidate in candidates:
        if candidate.model not in paths:
            try:
                paths[candidate.model] = resolve_model(candidate.model).path
            except Exception as err:  # a typo, a folder of notes: this candidate fails, the others still rank
                paths[candidate.model] = ""
                failed[candidate.model] = error_line(err)
        if candidate.model in failed:
            continue
        key = features_key(candidate, paths[candidate.model], token_level=token_level)
        if key in seen:
            raise UserError(
                f"--models: '{candidate.name}' is the candidate '{seen[key].name}' written another way (the same model "
                "folder, and a depth or layer equal to the model's last is the default); remove one."
            )
        seen[key] = candidate
    if candidates and not seen:
        first = candidates[0].model
        raise UserError(failed[first] if len(candidates) == 1 else f"no candidate can be found; '{first}': {failed[first]}")
    return {c.name: failed[c.model] for c in candidates if c.model in failed}


def check_estimators(estimators: Sequence[str] | None, recommend_by: str) -> list[str]:
    """The estimators to run (``recommend_by`` added when missing); an unknown or repeated name is refused."""
    chosen = list(estimators or ESTIMATORS)
    unknown = [e for e in [*chosen, recommend_by] if e not in ESTIMATORS]
    if unknown:
        raise UserError(f"unknown estimator '{unknown[0]}'; choose from {', '.join(ESTIMATORS)}.")
    repeated = [e for i, e in enumerate(chosen) if e in chosen[:i]]
    if repeated:
        raise UserError(f"--estimators: '{repeated[0]}' is given twice; name each estimator once.")
    return chosen if recommend_by in chosen else [*chosen, recommend_by]


def progress_line(row: RankRow, estimators: Sequence[str]) -> str:
    """One line for the terminal as each candidate is scored: its scores, or why it (or an estimator) failed."""
    if row.error is not None:
        return f"rank: {row.name}: {row.error}"
    parts = [
        f"{e} failed ({row.estimator_errors[e]})" if e in row.estimator_errors else f"{e} {row.scores[e]:.4f}" for e in estimators
    ]
    return f"rank: {row.name}: " + ", ".join(parts)


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
    ordered = sorted(rows, key=lambda r: (r.error is not None, -_finite_or(r.scores.get(first), -math.inf)))
    for row in ordered:
        name = f"**{row.name}** (recommended)" if row.name == recommended else row.name
        if row.error is not None:
            lines.append(f"| {name} | failed: {row.error} |" + " |" * (len(estimators) + 2))
            continue
        values = " | ".join(_cell(row, e) for e in estimators)
        lines.append(f"| {name} | {values} | {row.encode_seconds:.1f} | {row.parameters:,} | {row.layers} |")
    return "\n".join(lines)


def _finite_or(value: float | None, default: float) -> float:
    """``value`` when it is a finite number, else ``default``."""
    return value if value is not None and math.isfinite(value) else default


def _cell(row: RankRow, estimator: str) -> str:
    """One estimator's cell of a scored row: its score, or why that estimator failed on this candidate."""
    if estimator in row.estimator_errors:
        return f"failed: {row.estimator_errors[estimator]}"
    value = row.scores.get(estimator)
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


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
        ax.barh(names, [_finite_or(r.scores.get(estimator), 0.0) for r in rows])  # a failed estimator: no bar
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

    from nlp_transfer.tasks import build_task_and_data
    from nlp_transfer.training.accelerator import process_state

    estimators = check_estimators(estimators, recommend_by)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output {output_dir}: an existing file; the report is a folder (rank.json, rank.md, rank.png).")
    not_found = resolve_candidates(candidates, token_level=config.task == "ner")  # before anything is encoded
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    # the files' human-labelled rows: an augmented copy beside its original (or a label-name row) would flatter every
    # estimator, and pseudo-labels are a model's answers, not the task's
    task, data = build_task_and_data(dataclasses.replace(config, data=config.data.human_labelled_only()))
    sample = sample_split(data.splits["train"], sample_size, config.seed)
    check_sample(sample)
    device = process_state().device
    scored = {name: RankRow(name, error=reason) for name, reason in not_found.items()}
    for name in scored:
        print(progress_line(scored[name], estimators))
    for group in encoding_groups([c for c in candidates if c.name not in not_found]):
        for row in score_group(group, task, sample, config, estimators, device):
            scored[row.name] = row
            print(progress_line(row, estimators))
    rows = [scored[c.name] for c in candidates]
    if all(r.error is not None for r in rows):  # each error is printed above; the message says so once
        raise UserError(f"no candidate could be scored ({len(rows)} failed, each with its reason above); fix them and rerun.")
    meta = {"task": config.task, "sample": len(sample), "estimators": estimators}
    paths = write_report(rows, output_dir or default_output_dir(config), estimators=estimators, by=recommend_by, meta=meta)
    return rows, recommend(rows, recommend_by), paths
