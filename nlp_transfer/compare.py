"""Compare transfer strategies on the same data: metric, trainable parameters, time, peak memory.

Each strategy (and a from-scratch baseline: the same architecture with random weights, trained
fully) runs once per training-set size (or few-shot size in examples per class, ``data.per_class``)
and seed through :func:`nlp_transfer.pipeline.run_training`, each run
in a child process of its own (``python -m nlp_transfer.compare JOB.json``): its peak memory is its
own, it starts from a fresh Accelerate state, and a crash fails that run only. The results go to
``compare.json``, ``compare.md`` and ``compare.png`` after every run. A strategy that scores below
the from-scratch baseline at the same size is flagged as negative transfer. Over several seeds the
report adds each strategy's mean and standard deviation per size (:func:`aggregate_rows`) and the
strategy to use at each size (:func:`recommendations`).
"""

from __future__ import annotations

import codecs
import copy
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from nlp_transfer.config import RunConfig, TransferConfig, check_per_class, config_from_dict, config_to_dict
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.transfer import STRATEGIES

SCRATCH = "scratch"
REPORT_FILES = ("compare.json", "compare.md", "compare.png")
METRICS_FILE, RUN_INFO_FILE = "metrics.json", "run_info.json"  # what a finished run leaves in its run directory
CHILD_RSS = "child_peak_rss"
CHILD_RSS_BOUND = "child_peak_rss_upper_bound"
CUDA_PEAK = "cuda_max_allocated"
MEMORY_NOTES = {
    CHILD_RSS: "peak resident set of the run's own process, as it reported it (interpreter and libraries included)",
    CHILD_RSS_BOUND: "the kernel's peak resident set of a run that died before reporting its own; it counts the "
    "comparison's own resident set as a floor",
    CUDA_PEAK: "CUDA allocator peak of the run's process",
    "unavailable": "not measured",
}


@dataclass
class ComparisonRow:
    """One run of the comparison."""

    strategy: str
    train_size: int | None  # None: all the training data
    train_examples: int
    metric: str
    split: str
    value: float | None  # None: the run failed (see error)
    trainable_parameters: int
    total_parameters: int
    train_seconds: float
    peak_memory_mb: float
    memory_kind: str
    run_dir: str
    learning_rate: float = 0.0
    negative_transfer: bool = False  # scored below the baseline run (``below``) of the same size and seed
    epochs: int = 0
    base_strategy: str = ""  # the strategy behind the label (``strategy``); scratch trains fully
    trainable_parameters_end: int = 0  # at the end of training (gradual unfreezing opens more as it goes); 0: unknown
    error: str = ""  # a failed run: the last error line of its process ("": it succeeded)
    per_class: int | None = None  # --per-class: the training examples of each class (data.per_class); None: train_size
    seed: int | None = None  # the seed --seeds varies: data.sample_seed with --per-class, else the run's seed
    below: str = ""  # the baseline label a negative-transfer row scored below (scratch, or --baseline's label)


@dataclass(frozen=True)
class Point:
    """Where a run sits on the learning curve: a training size or examples per class, and a seed offset.

    ``seed_offset`` None: the config's own seed, and run directories named as before seeds existed.
    """

    train_size: int | None = None  # None: all the training data (or the config's data.max_train_samples)
    per_class: int | None = None
    seed_offset: int | None = None


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


def parse_per_class(text: str) -> list[int]:
    """``8,16,32`` -> ``[8, 16, 32]``: the training examples of each class at each point of a few-shot curve."""
    sizes: list[int] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if not (item.isdigit() and int(item) > 0):
            raise ConfigError(f"--per-class: {item!r} is not a positive number of examples per class, e.g. 8,16,32,64.")
        if int(item) in sizes:
            raise ConfigError(f"--per-class: {item} is given twice; give each size once.")
        sizes.append(int(item))
    if not sizes:
        raise ConfigError("--per-class: give at least one size, e.g. 8,16,32,64.")
    return sizes


def comparison_points(train_sizes: Sequence[int | None] = (None,), per_class: Sequence[int] = (), seeds: int = 1) -> list[Point]:
    """The points of a comparison, each size with each of ``seeds`` seeds: ``per_class`` sizes when given, else ``train_sizes``.

    One seed of ``train_sizes`` keeps the config's seed (``seed_offset`` None); ``per_class`` always counts its
    sample seeds from ``data.sample_seed``.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}.")
    if per_class:
        if list(train_sizes) != [None]:
            raise ConfigError("--per-class and --train-sizes both choose the training rows; give one of them.")
        return [Point(per_class=size, seed_offset=seed) for size in per_class for seed in range(seeds)]
    offsets = [None] if seeds == 1 else list(range(seeds))
    return [Point(train_size=size, seed_offset=seed) for size in train_sizes for seed in offsets]


def epochs_for_min_steps(epochs: int, train_size: int, batch_size: int, min_steps: int) -> int:
    """Epochs that give at least ``min_steps`` optimizer steps on ``train_size`` examples (never fewer than ``epochs``)."""
    steps_per_epoch = max(1, math.ceil(train_size / batch_size))
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


def default_output_dir(config: RunConfig) -> Path:
    """Where a comparison's report goes unless told: ``OUTPUT_DIR-compare``."""
    return Path(f"{config.output_dir.rstrip('/')}-compare")


def run_name(label: str, point: Point, run_config: RunConfig) -> str:
    """The run's directory name under ``runs/``: label, size and (when seeds vary) the seed, so no two runs share it."""
    if point.per_class is not None:
        return f"{label}-{point.per_class}-per-class-seed{run_config.data.sample_seed}"
    name = f"{label}-{point.train_size or 'all'}"
    return name if point.seed_offset is None else f"{name}-seed{run_config.seed}"


def _run_config(
    base: RunConfig, name: str, strategy: str, point: Point, min_steps: int, runs_dir: Path, labels: int
) -> RunConfig:
    """The config of one run: ``base`` with the run's strategy, training rows, seed, epochs and run directory.

    ``labels`` (the number of classes) turns examples per class into the training size the epoch floor needs.
    """
    run_config = copy.deepcopy(base)
    run_config.strategy = strategy  # type: ignore[assignment]
    if name == SCRATCH:  # the baseline: plain full training of random weights
        run_config.transfer = TransferConfig()
    size = point.train_size
    if point.per_class is not None:  # the same rows for every strategy at this size and seed
        run_config.data.per_class = point.per_class
        run_config.data.sample_seed = base.data.sample_seed + (point.seed_offset or 0)
        size = point.per_class * labels
    else:
        run_config.seed = base.seed + (point.seed_offset or 0)
        if size is not None:  # "all": every training example, or data.max_train_samples where the config caps them
            run_config.data.max_train_samples = size
    if size is not None:
        training = run_config.training
        per_step = training.batch_size * training.gradient_accumulation_steps
        training.epochs = epochs_for_min_steps(training.epochs, size, per_step, min_steps)
    run_config.output_dir = str(runs_dir / run_name(name, point, run_config))
    return run_config


def per_class_labels(config: RunConfig, largest: int) -> list[str]:
    """The label names of ``config``'s data, read as a run at ``largest`` examples per class reads it.

    Raises, before anything trains, the error every ``--per-class`` run would meet: a task without classes,
    data.max_train_samples set, a class with fewer training rows than ``largest``.
    """
    from nlp_transfer.data.loading import TextRows, load_splits

    trial = copy.deepcopy(config)
    trial.data.per_class = largest
    check_per_class(trial, "--per-class")
    return load_splits(trial.data, TextRows(trial.data, trial.task == "multilabel"), seed=trial.seed).labels


def _label_counts(configs: Mapping[str, RunConfig], points: Sequence[Point]) -> dict[str, int]:
    """Label -> number of classes of its config's data, for a ``--per-class`` comparison (each distinct data read once)."""
    sizes = [p.per_class for p in points if p.per_class is not None]
    if not sizes:
        return {name: 0 for name in configs}
    read: dict[str, int] = {}
    counts: dict[str, int] = {}
    for name, config in configs.items():
        key = json.dumps([config.task, config.seed, asdict(config.data)], sort_keys=True, default=str)
        if key not in read:
            read[key] = len(per_class_labels(config, max(sizes)))
        counts[name] = read[key]
    return counts


def describe_point(point: Point, seed: int | None) -> str:
    """Where a run sits, in words: ``8 per class, sample seed 0``, ``train size 100``, ``train size 100, seed 43``."""
    if point.per_class is not None:
        return f"{point.per_class} per class, sample seed {seed}"
    text = f"train size {point.train_size or 'all'}"
    return text if point.seed_offset is None else f"{text}, seed {seed}"


def _varied_seed(run_config: RunConfig) -> int:
    """The seed a comparison's seeds vary: the sample seed of a data.per_class run, else the run's seed."""
    return run_config.data.sample_seed if run_config.data.per_class is not None else run_config.seed


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
    ``OUTPUT_DIR/runs/`` (:func:`run_name`; replaced if present); the report goes to ``OUTPUT_DIR`` (default:
    ``config.output_dir``-compare) after every run. A run that fails is recorded with its error
    (``ComparisonRow.error``) and the comparison goes on. A run that scores below the ``baseline`` label's run
    of the same size and seed (the from-scratch run by default; e.g. the base model when comparing it with
    models adapted to a domain) is flagged as negative transfer.
    """
    out = Path(output_dir) if output_dir else default_output_dir(config)
    chosen = dict(strategies) if isinstance(strategies, Mapping) else {name: name for name in strategies}
    if scratch:
        chosen[SCRATCH] = "full"
    points = comparison_points(train_sizes, per_class, seeds)
    bases = {name: (strategy_configs or {}).get(name, config) for name in chosen}
    labels = _label_counts(bases, points)
    rows: list[ComparisonRow] = []
    with tempfile.TemporaryDirectory(prefix="nlp-transfer-compare-") as jobs:
        for point in points:
            for name, strategy in chosen.items():
                run_config = _run_config(bases[name], name, strategy, point, min_steps, out / "runs", labels[name])
                where = describe_point(point, _varied_seed(run_config))
                print(f"\n=== compare: {name}, {where} ===", flush=True)
                start = time.perf_counter()
                outcome = train_in_child(run_config, from_scratch=name == SCRATCH, jobs=Path(jobs), debug=debug)
                row = comparison_row(name, strategy, point.train_size, run_config, outcome, time.perf_counter() - start)
                if row.error:
                    print(f"=== compare: {name}, {where} failed: {row.error}", file=sys.stderr, flush=True)
                rows.append(row)
                flag_negative_transfer(rows, baseline)
                write_report(rows, out)  # after every run: an interrupted comparison keeps what it measured
    return rows


# --------------------------------------------------------------------------- one run in a child process


@dataclass
class ChildOutcome:
    """How a child process ended: exit code (negative: killed by that signal), peak memory, error line."""

    returncode: int
    peak_rss_bytes: int  # see memory_kind; 0: unknown
    error: str = ""  # the child's last error line ("" when it succeeded)
    cuda_peak_bytes: int | None = None  # the CUDA allocator peak the child reported, on a GPU
    memory_kind: str = CHILD_RSS_BOUND  # CHILD_RSS once the child reported its own peak


def run_child(command: Sequence[str], env: Mapping[str, str] | None = None) -> ChildOutcome:
    """Run ``command``, passing its standard error through; return its exit code, peak memory and last error line.

    The peak is the kernel's ``ru_maxrss`` of this child alone (``os.wait4``), an upper bound: on Linux the
    child inherits the high-water mark of the address space it replaced at ``exec``, so it counts this
    process's resident set as a floor. (``RUSAGE_CHILDREN`` is worse: the largest of all children reaped so
    far.) :func:`train_in_child` therefore prefers the peak the child reports itself (:func:`own_peak_rss_bytes`).
    """
    with subprocess.Popen(list(command), stderr=subprocess.PIPE, env=None if env is None else dict(env)) as proc:
        try:
            tail = _pass_through(proc.stderr)  # type: ignore[arg-type]
            peak = _reap(proc)
        except BaseException:  # e.g. Ctrl-C in the parent: do not leave the run behind
            proc.kill()
            raise
    returncode = int(proc.returncode)
    error = "" if returncode == 0 else _last_line(tail) or _describe_exit(returncode)
    return ChildOutcome(returncode, peak, error, memory_kind=CHILD_RSS_BOUND if peak else "unavailable")


def _pass_through(stream: IO[bytes], keep: int = 8192) -> str:
    """Copy a child's standard error to ours as it comes (progress bars included); return its last ``keep`` characters."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    tail = ""
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]
        text = decoder.decode(chunk)
        sys.stderr.write(text)
        sys.stderr.flush()
        tail = (tail + text)[-keep:]
    return tail + decoder.decode(b"", final=True)


def _reap(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc``; set its return code and return its peak resident set in bytes (0 without os.wait4)."""
    if not hasattr(os, "wait4"):
        proc.wait()
        return 0
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def _last_line(text: str) -> str:
    """The last non-blank line of ``text`` (a progress bar's carriage returns end lines too)."""
    return next((line.strip() for line in reversed(re.split(r"[\r\n]+", text)) if line.strip()), "")


def _describe_exit(returncode: int) -> str:
    """Words for an exit without an error message: a signal (the out-of-memory killer sends SIGKILL) or a code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {returncode} without an error message"


def train_in_child(run_config: RunConfig, *, from_scratch: bool, jobs: Path, debug: bool = False) -> ChildOutcome:
    """Train ``run_config`` in a child process (``python -m nlp_transfer.compare JOB.json``); return how it ended.

    The job and result files the two processes exchange go to the folder ``jobs``. The run directory is
    removed first, so that a run that fails early leaves no earlier comparison's results behind. The child
    imports the package as this interpreter finds it from the current directory (an installed or checked-out copy).
    """
    shutil.rmtree(run_config.output_dir, ignore_errors=True)
    stem = Path(run_config.output_dir).name
    job, result = jobs / f"{stem}.job.json", jobs / f"{stem}.result.json"
    result.unlink(missing_ok=True)
    spec = {"config": config_to_dict(run_config), "from_scratch": from_scratch, "debug": debug, "result": str(result)}
    job.write_text(json.dumps(spec), encoding="utf-8")
    outcome = run_child([sys.executable, "-m", "nlp_transfer.compare", str(job)])
    reported = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else {}
    outcome.cuda_peak_bytes = reported.get("cuda_peak_bytes")
    if reported.get("peak_rss_bytes"):
        outcome.peak_rss_bytes, outcome.memory_kind = int(reported["peak_rss_bytes"]), CHILD_RSS
    if outcome.returncode != 0 and reported.get("error"):
        outcome.error = reported["error"]  # the child's own words beat whatever it printed last
    return outcome


def comparison_row(
    name: str, strategy: str, size: int | None, run_config: RunConfig, outcome: ChildOutcome, wall: float
) -> ComparisonRow:
    """The report row of one finished (or failed) run, read from its run directory."""
    run_dir = Path(run_config.output_dir)
    cuda = outcome.cuda_peak_bytes is not None
    peak = outcome.cuda_peak_bytes if cuda else outcome.peak_rss_bytes
    row = ComparisonRow(
        strategy=name,
        train_size=size,
        train_examples=size or 0,
        metric="",
        split="",
        value=None,
        trainable_parameters=0,
        total_parameters=0,
        train_seconds=round(wall, 2),
        peak_memory_mb=round((peak or 0) / 2**20, 1),
        memory_kind=CUDA_PEAK if cuda else outcome.memory_kind,
        run_dir=str(run_dir),
        learning_rate=run_config.training.learning_rate,
        epochs=run_config.training.epochs,
        base_strategy=strategy,
        error=outcome.error,
        per_class=run_config.data.per_class,
        seed=_varied_seed(run_config),
    )
    if outcome.returncode != 0:
        return row
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
        info = json.loads((run_dir / RUN_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        row.error = f"the run exited cleanly but its results are unreadable: {err}"
        return row
    row.metric = next(iter(info["best_metric"]))
    row.split = "test" if "test" in metrics else "validation"
    row.value = float(metrics[row.split][row.metric])
    row.train_examples = int(info["examples"]["train"])
    row.trainable_parameters, row.total_parameters = int(info["trainable_parameters"]), int(info["total_parameters"])
    row.trainable_parameters_end = int(info.get("trainable_parameters_last_epoch") or 0)
    row.train_seconds = float(info.get("train_seconds") or row.train_seconds)
    return row


def _one_line(err: BaseException) -> str:
    """An exception as one line: a user error's message alone, anything else with its type."""
    text = " ".join(str(err).split())
    line = text if isinstance(err, UserError) else f"{type(err).__name__}: {text}".rstrip(": ")
    return line[:500]


def own_peak_rss_bytes() -> int:
    """This process's peak resident set since it started (``VmHWM``: its own address space only, on Linux).

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is the fallback elsewhere; on Linux it would also count the parent's
    resident set, inherited at ``exec``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            found = re.search(r"^VmHWM:\s*(\d+) kB", handle.read(), re.MULTILINE)
        if found:
            return int(found.group(1)) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _train_job(job: Mapping[str, Any]) -> int | None:
    """Train the job's run; return the CUDA allocator peak in bytes (None without a GPU)."""
    import torch

    from nlp_transfer.pipeline import run_training

    config = config_from_dict(job["config"], source=f"{job['config'].get('output_dir')} (compare job)")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    run_training(config, overwrite=True, from_scratch=bool(job["from_scratch"]))
    return int(torch.cuda.max_memory_allocated()) if cuda else None


def child_main(argv: Sequence[str]) -> int:
    """Entry of a run's child process: ``python -m nlp_transfer.compare JOB.json`` (written by :func:`train_in_child`).

    Writes the job's result file: its own peak memory, and the error that ended the run if one did; exits like
    ``nlp-transfer train``.
    """
    from nlp_transfer.cli import _guard, _quiet_libraries

    if len(argv) != 1:
        print("usage: python -m nlp_transfer.compare JOB.json (nlp-transfer compare writes the job)", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = Path(job["result"])
    _quiet_libraries(bool(job["debug"]))

    def action() -> None:
        try:
            peak = _train_job(job)
        except BaseException as err:
            result.write_text(json.dumps({"error": _one_line(err), "peak_rss_bytes": own_peak_rss_bytes()}), encoding="utf-8")
            raise
        result.write_text(json.dumps({"cuda_peak_bytes": peak, "peak_rss_bytes": own_peak_rss_bytes()}), encoding="utf-8")

    return _guard(bool(job["debug"]), action)


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


# --------------------------------------------------------------------------- report


def flag_negative_transfer(rows: list[ComparisonRow], baseline: str = SCRATCH) -> None:
    """Mark each row that scores worse than the ``baseline`` label's run of the same size and seed (failed runs: never).

    ``baseline`` is the from-scratch run by default; ``nlp-transfer compare --baseline LABEL`` names another, e.g.
    the base model beside models adapted to a domain (an adaptation that scores below it hurt).
    """
    runs = {(r.train_size, r.per_class, r.seed): r for r in rows if r.strategy == baseline and r.value is not None}
    for row in rows:
        base = runs.get((row.train_size, row.per_class, row.seed))
        flagged = not (base is None or row.strategy in (baseline, SCRATCH) or row.value is None or base.value is None)
        row.negative_transfer = flagged and _better(base.value, row.value, row.metric)  # type: ignore[union-attr]
        row.below = baseline if row.negative_transfer else ""


def _better(value: float, other: float, metric: str) -> bool:
    """Whether ``value`` beats ``other`` on ``metric`` (lower is better for a loss)."""
    return value < other if metric.endswith("loss") else value > other


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
    trainable = _parameter_share(r.trainable_parameters, r.total_parameters)
    if r.trainable_parameters_end and r.trainable_parameters_end != r.trainable_parameters:
        trainable += " at the start, " + _parameter_share(r.trainable_parameters_end, r.total_parameters) + " at the end"
    return (
        f"| {r.strategy} |{cells} {r.train_examples} | {r.epochs} | {r.learning_rate:g} | {r.split} {r.metric} {r.value:.4f} | "
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


# --------------------------------------------------------------------------- over seeds

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
    )


def size_text(row: AggregateRow) -> str:
    """A size in words: ``8 per class``, ``100 training examples``, ``all training examples``."""
    if row.per_class is not None:
        return f"{row.per_class} per class"
    return f"{row.train_size or 'all'} training examples"


def spread_text(row: AggregateRow) -> str:
    """``0.8125 ± 0.0340 over 5 seeds`` (``, 1 failed`` when runs failed); one seed has no spread."""
    if row.mean is None:
        return f"no successful run, {row.failed} failed"
    value = f"{row.mean:.{DIGITS}f}" + ("" if row.std is None else f" ± {row.std:.{DIGITS}f}")
    text = f"{value} over {row.seeds} seed{'s' if row.seeds != 1 else ''}"
    return text + (f", {row.failed} failed" if row.failed else "")


def _shown_mean(row: AggregateRow) -> float:
    """The mean as the report prints it: means equal to that precision are a tie."""
    return round(float(row.mean or 0.0), DIGITS)


def _spread(row: AggregateRow) -> float:
    """The standard deviation, unknown (one seed) counting as the widest."""
    return math.inf if row.std is None else row.std


def _ranked(rows: Sequence[AggregateRow]) -> list[AggregateRow]:
    """Successful strategies best first: by mean (to the report's precision), then smaller spread, then run order."""
    done = [r for r in rows if r.mean is not None]
    sign = 1 if done and done[0].metric.endswith("loss") else -1
    return sorted(done, key=lambda r: (sign * _shown_mean(r), _spread(r)))


def recommendation(rows: Sequence[AggregateRow], runs: Sequence[ComparisonRow] = ()) -> str:
    """The line for one size: the strategy with the best mean, the next best, ties and negative transfer said.

    ``rows`` are the aggregates of one size; the from-scratch baseline is never recommended, only noted
    when it beats the pick. With the ``runs`` behind them, the line adds the pick's lead over the next
    best paired by seed (:func:`lead_text`).
    """
    where = f"at {size_text(rows[0])}"
    ranked = _ranked([r for r in rows if r.strategy != SCRATCH])
    if not ranked:
        return f"{where}: no strategy has a successful run ({sum(r.failed for r in rows)} failed)"
    best = ranked[0]
    line = f"{where}: use {best.strategy} ({spread_text(best)})"
    if len(ranked) > 1 and _shown_mean(ranked[1]) == _shown_mean(best):
        reason = "for its smaller spread" if _spread(best) < _spread(ranked[1]) else "as listed first"
        line += f", tied on the mean with {ranked[1].strategy} ({spread_text(ranked[1])}), picked {reason}"
    elif len(ranked) > 1:
        line += f"; next best {ranked[1].strategy} ({spread_text(ranked[1])})"
    if len(ranked) > 1 and runs:
        line += lead_text(best, ranked[1], runs)
    scratch = next((r for r in rows if r.strategy == SCRATCH and r.mean is not None), None)
    if scratch is not None and _better(_shown_mean(scratch), _shown_mean(best), best.metric):
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


def lead_text(best: AggregateRow, other: AggregateRow, runs: Sequence[ComparisonRow]) -> str:
    """``best``'s lead over ``other`` paired by seed, whether the seeds separate them, and their training times.

    Empty with fewer than two seeds in common: one difference has no spread to judge it by.
    """
    from nlp_transfer.evaluation.paired import CONFIDENCE, paired_lead

    mine, theirs = _runs_of(best, runs), _runs_of(other, runs)
    lead = paired_lead(
        {r.seed: float(r.value or 0.0) for r in mine},
        {r.seed: float(r.value or 0.0) for r in theirs},
        lower_is_better=best.metric.endswith("loss"),
    )
    if lead is None or lead.low is None or lead.high is None:
        return ""
    verdict = "the seeds separate them" if lead.separated else "within what the seeds move, either will do"
    text = (
        f"; paired by seed, {best.strategy} leads by {lead.mean:.{DIGITS}f} ({CONFIDENCE:.0%} interval "
        f"{lead.low:.{DIGITS}f} to {lead.high:.{DIGITS}f}, {lead.seeds} seeds): {verdict}"
    )
    seconds = statistics.median(r.train_seconds for r in mine), statistics.median(r.train_seconds for r in theirs)
    if min(seconds) > 0:
        text += f"; {other.strategy} trains in {seconds[1] / seconds[0]:.2f}x {best.strategy}'s time (medians)"
    return text


def aggregate_table(rows: Sequence[AggregateRow]) -> str:
    """The aggregate as a Markdown table: one row per strategy and size."""
    done = next((r for r in rows if r.mean is not None), None)
    metric = f"{done.split} {done.metric}" if done else "metric"
    lines = [
        f"| strategy | size | train examples | {metric}: mean ± sample std (ddof=1) | seeds | failed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        value = "**failed**" if r.mean is None else f"{r.mean:.{DIGITS}f}" + ("" if r.std is None else f" ± {r.std:.{DIGITS}f}")
        lines.append(f"| {r.strategy} | {size_text(r)} | {r.train_examples} | {value} | {r.seeds} | {r.failed} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- files


def write_report(rows: Sequence[ComparisonRow], output_dir: str | Path) -> dict[str, Path]:
    """Write compare.json, compare.md and compare.png into ``output_dir``; returns their paths.

    Over seeds (:func:`several_seeds`) they add the aggregate per strategy and size, the recommendation
    per size, and the png draws the mean with a band of one standard deviation.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in REPORT_FILES}
    kinds = list(dict.fromkeys(r.memory_kind for r in rows))
    payload: dict[str, Any] = {"rows": [asdict(r) for r in rows], "memory": kinds[0] if len(kinds) == 1 else kinds}
    note = (
        "Peak memory: "
        + "; ".join(f"{kind}: {MEMORY_NOTES.get(kind, kind)}" for kind in kinds)
        + ". Each run trains in a process of its own. "
        + "Negative transfer: the run scored below the baseline ("
        + (next((r.below for r in rows if r.below), "") or "the from-scratch run")
        + ") at the same training size and seed."
    )
    text = markdown_table(rows) + "\n\n" + note + "\n"
    if several_seeds(rows):
        aggregates = aggregate_rows(rows)
        lines = recommendations(aggregates, rows)
        payload.update(aggregate=[asdict(a) for a in aggregates], recommendations=lines)
        text += (
            "\n## Over seeds\n\nSeeds: the sample seed (data.sample_seed) of runs with examples per class, else the "
            "run's seed; failed runs are counted, not averaged.\n\n"
            + aggregate_table(aggregates)
            + "\n\n"
            + "".join(f"- {line}\n" for line in lines)
        )
        plot_curve(aggregates, paths["compare.png"])
    else:
        plot_comparison([r for r in rows if r.value is not None], paths["compare.png"])
    paths["compare.json"].write_text(json.dumps(payload, indent=2), encoding="utf-8")
    paths["compare.md"].write_text(text, encoding="utf-8")
    return paths


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


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
