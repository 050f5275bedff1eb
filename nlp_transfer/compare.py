"""Compare transfer strategies on the same data: metric, trainable parameters, time, peak memory.

Each strategy (and a from-scratch baseline: the same architecture with random weights, trained
fully) runs once per training-set size through :func:`nlp_transfer.pipeline.run_training`. The
results go to ``compare.json``, ``compare.md`` and ``compare.png``. A strategy that scores below
the from-scratch baseline at the same size is flagged as negative transfer.
"""

from __future__ import annotations

import copy
import json
import math
import os
import resource
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nlp_transfer.config import RunConfig, TransferConfig
from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.strategies import STRATEGIES

SCRATCH = "scratch"
REPORT_FILES = ("compare.json", "compare.md", "compare.png")


@dataclass
class ComparisonRow:
    """One run of the comparison."""

    strategy: str
    train_size: int | None  # None: all the training data
    train_examples: int
    metric: str
    split: str
    value: float
    trainable_parameters: int
    total_parameters: int
    train_seconds: float
    peak_memory_mb: float
    memory_kind: str
    run_dir: str
    learning_rate: float = 0.0
    negative_transfer: bool = False
    epochs: int = 0
    base_strategy: str = ""  # the strategy behind the label (``strategy``); scratch trains fully
    trainable_parameters_end: int = 0  # at the end of training (gradual unfreezing opens more as it goes); 0: unknown


def parse_strategies(text: str) -> dict[str, str]:
    """``full,frozen,llrd=full`` -> {run label: strategy}, checked.

    A plain name compares that strategy; ``LABEL=STRATEGY`` adds a variant of a strategy under its own
    label, which ``LABEL:key=value`` overrides then configure (e.g. ``llrd=full`` with
    ``llrd:transfer.layer_lr_decay=0.8``).
    """
    entries: dict[str, str] = {}
    unknown = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        label, _, strategy = item.partition("=")
        label, strategy = label.strip(), (strategy or label).strip()
        if strategy not in STRATEGIES:
            unknown.append(strategy)
        elif not label or label == SCRATCH or label in entries:
            raise ConfigError(f"--strategies: the label {label!r} is empty, reserved or given twice; name each run once.")
        else:
            entries[label] = strategy
    if not entries or unknown:
        raise ConfigError(f"--strategies: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(STRATEGIES)}.")
    return entries


def split_strategy_overrides(overrides: Sequence[str], strategies: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split ``key=value`` overrides into the common ones and ``STRATEGY:key=value`` ones for one strategy.

    ``lora:training.learning_rate=5e-4`` changes the learning rate of the lora runs only; the prefix
    may be any compared strategy or ``scratch``.
    """
    common: list[str] = []
    own: dict[str, list[str]] = {}
    for item in overrides:
        prefix, sep, rest = item.partition(":")
        if sep and "=" not in prefix:
            if prefix not in (*strategies, SCRATCH):
                raise ConfigError(
                    f"override {item!r}: '{prefix}' is not a compared strategy; use one of {', '.join((*strategies, SCRATCH))}."
                )
            own.setdefault(prefix, []).append(rest)
        else:
            common.append(item)
    return common, own


def parse_train_sizes(text: str) -> list[int | None]:
    """``50,100,all`` -> ``[50, 100, None]`` (None: all the training data)."""
    sizes: list[int | None] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item == "all":
            sizes.append(None)
        elif item.isdigit() and int(item) > 0:
            sizes.append(int(item))
        else:
            raise ConfigError(f"--train-sizes: {item!r} is neither a positive number nor 'all'.")
    if not sizes:
        raise ConfigError("--train-sizes: give at least one size, e.g. 50,100,all.")
    return sizes


class PeakMemory:
    """Peak memory while the block runs: CUDA's allocator peak on a GPU, else the process's resident set (sampled)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self.kind = "cuda_max_allocated" if torch.cuda.is_available() else "process_rss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda_max_allocated":
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak_bytes = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        if self.kind == "cuda_max_allocated":
            self.peak_bytes = torch.cuda.max_memory_allocated()
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, _rss_bytes())


def _rss_bytes() -> int:
    """Resident set size of this process now (/proc on Linux; the lifetime peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def epochs_for_min_steps(epochs: int, train_size: int, batch_size: int, min_steps: int) -> int:
    """Epochs that give at least ``min_steps`` optimizer steps on ``train_size`` examples (never fewer than ``epochs``)."""
    steps_per_epoch = max(1, math.ceil(train_size / batch_size))
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


def run_comparison(
    config: RunConfig,
    strategies: Sequence[str] | Mapping[str, str],
    train_sizes: Sequence[int | None] = (None,),
    *,
    output_dir: str | Path | None = None,
    scratch: bool = True,
    strategy_configs: dict[str, RunConfig] | None = None,
    min_steps: int = 0,
) -> list[ComparisonRow]:
    """Train every strategy (plus the from-scratch baseline) at every training size; write the report.

    ``strategies`` names strategies, or maps run labels to strategies (:func:`parse_strategies`).
    ``strategy_configs`` gives a label (or ``scratch``) its own config in place of ``config``, e.g. a
    higher learning rate for lora and frozen (see :func:`split_strategy_overrides`). ``min_steps`` raises
    the epochs of small training sets so that every run takes at least that many optimizer steps (a
    learning curve at 50 examples is otherwise two steps long). Runs go to
    ``OUTPUT_DIR/runs/<label>-<size>`` (replaced if present); the report to ``OUTPUT_DIR``
    (default: ``config.output_dir``-compare).
    """
    from nlp_transfer.pipeline import run_training

    out = Path(output_dir or f"{config.output_dir.rstrip('/')}-compare")
    chosen = dict(strategies) if isinstance(strategies, Mapping) else {name: name for name in strategies}
    if scratch:
        chosen[SCRATCH] = "full"
    rows: list[ComparisonRow] = []
    for size in train_sizes:
        for name, strategy in chosen.items():
            run_config = copy.deepcopy((strategy_configs or {}).get(name, config))
            run_config.strategy = strategy  # type: ignore[assignment]
            if name == SCRATCH:  # the baseline: plain full training of random weights
                run_config.transfer = TransferConfig()
            if size is not None:  # "all": every training example, or data.max_train_samples where the config caps them
                run_config.data.max_train_samples = size
                training = run_config.training
                per_step = training.batch_size * training.gradient_accumulation_steps
                training.epochs = epochs_for_min_steps(training.epochs, size, per_step, min_steps)
            run_config.output_dir = str(out / "runs" / f"{name}-{size or 'all'}")
            print(f"\n=== compare: {name}, train size {size or 'all'} ===", flush=True)
            start = time.perf_counter()
            with PeakMemory() as memory:
                result = run_training(run_config, overwrite=True, from_scratch=name == SCRATCH)
            wall = time.perf_counter() - start
            metric = next(iter(result.info["best_metric"]))
            split = "test" if "test" in result.metrics else "validation"
            rows.append(
                ComparisonRow(
                    strategy=name,
                    train_size=size,
                    train_examples=int(result.info["examples"]["train"]),
                    metric=metric,
                    split=split,
                    value=float(result.metrics[split][metric]),
                    trainable_parameters=int(result.info["trainable_parameters"]),
                    total_parameters=int(result.info["total_parameters"]),
                    train_seconds=float(result.info.get("train_seconds") or wall),
                    peak_memory_mb=round(memory.peak_bytes / 2**20, 1),
                    memory_kind=memory.kind,
                    run_dir=str(result.output_dir),
                    learning_rate=run_config.training.learning_rate,
                    epochs=run_config.training.epochs,
                    base_strategy=strategy,
                    trainable_parameters_end=int(result.info.get("trainable_parameters_last_epoch") or 0),
                )
            )
            flag_negative_transfer(rows)
            write_report(rows, out)  # after every run: an interrupted comparison keeps what it measured
    return rows


def flag_negative_transfer(rows: list[ComparisonRow]) -> None:
    """Mark each strategy row that scores worse than the from-scratch run of the same training size."""
    baseline = {r.train_size: r for r in rows if r.strategy == SCRATCH}
    for row in rows:
        base = baseline.get(row.train_size)
        if base is None or row.strategy == SCRATCH:
            continue
        lower_is_better = row.metric.endswith("loss")
        row.negative_transfer = row.value > base.value if lower_is_better else row.value < base.value


def _parameter_share(count: int, total: int) -> str:
    return f"{count:,} ({100 * count / max(total, 1):.2f}%)"


def markdown_table(rows: Sequence[ComparisonRow]) -> str:
    """The comparison as a Markdown table, one row per run."""
    lines = [
        "| strategy | train size | epochs | learning rate | metric | trainable params | train time (s) | peak memory (MB) | negative transfer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        trainable = _parameter_share(r.trainable_parameters, r.total_parameters)
        if r.trainable_parameters_end and r.trainable_parameters_end != r.trainable_parameters:
            trainable += " at the start, " + _parameter_share(r.trainable_parameters_end, r.total_parameters) + " at the end"
        lines.append(
            f"| {r.strategy} | {r.train_examples} | {r.epochs} | {r.learning_rate:g} | {r.split} {r.metric} {r.value:.4f} | "
            f"{trainable} | {r.train_seconds:.1f} | {r.peak_memory_mb:,.0f} | "
            f"{'**yes** (below scratch)' if r.negative_transfer else ''} |"
        )
    return "\n".join(lines)


def write_report(rows: Sequence[ComparisonRow], output_dir: str | Path) -> dict[str, Path]:
    """Write compare.json, compare.md and compare.png into ``output_dir``; returns their paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in REPORT_FILES}
    memory_kind = rows[0].memory_kind if rows else ""
    payload: dict[str, Any] = {"rows": [asdict(r) for r in rows], "memory": memory_kind}
    paths["compare.json"].write_text(json.dumps(payload, indent=2), encoding="utf-8")
    note = (
        "Peak memory: "
        + ("CUDA allocator peak." if memory_kind == "cuda_max_allocated" else "resident set of the process during the run.")
        + " Negative transfer: the strategy scored below the from-scratch baseline at the same training size."
    )
    paths["compare.md"].write_text(markdown_table(rows) + "\n\n" + note + "\n", encoding="utf-8")
    plot_comparison(rows, paths["compare.png"])
    return paths


def plot_comparison(rows: Sequence[ComparisonRow], path: Path) -> None:
    """Metric against training size per strategy (a line each), or bars when there is one size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
