"""One run in a child process of its own: its job file, exit, peak memory and the row read from its run directory."""

from __future__ import annotations

import codecs
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nlp_transfer.compare.plan import varied_seed
from nlp_transfer.compare.rows import CHILD_RSS, CHILD_RSS_BOUND, CUDA_PEAK, METRICS_FILE, RUN_INFO_FILE, ComparisonRow
from nlp_transfer.config import RunConfig, config_from_dict, config_to_dict
from nlp_transfer.errors import UserError


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
    spec["parent_pid"] = os.getpid()
    spec["imports"], spec["sys_path"] = plugin_modules(run_config), list(sys.path)
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
        seed=varied_seed(run_config),
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
    row.validation = float(metrics["validation"][row.metric]) if row.metric in metrics.get("validation", {}) else None
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


def plugin_modules(config: RunConfig) -> list[str]:
    """The modules outside the package that registered ``config``'s strategy and task, for a child to import first
    (a child process starts with the package's own registry only)."""
    from nlp_transfer.tasks import TASKS
    from nlp_transfer.transfer import STRATEGIES

    owners = [getattr(STRATEGIES.get(config.strategy), "__module__", ""), getattr(TASKS.get(config.task), "__module__", "")]
    modules = [m for m in dict.fromkeys(owners) if m and m.split(".")[0] != "nlp_transfer"]
    if "__main__" in modules:
        raise UserError(
            f"strategy={config.strategy} / task={config.task} is registered in the script being run, which compare's "
            "child processes cannot import: move it into a module of its own and import that."
        )
    return modules


def _train_job(job: Mapping[str, Any]) -> int | None:
    """Train the job's run; return the CUDA allocator peak in bytes (None without a GPU)."""
    import importlib

    import torch

    from nlp_transfer.pipeline import run_training

    sys.path.extend(p for p in job.get("sys_path", []) if p not in sys.path)  # where the parent found those modules
    for module in job.get("imports", []):  # the modules that registered a strategy or task from outside the package
        importlib.import_module(module)
    config = config_from_dict(job["config"], source=f"{job['config'].get('output_dir')} (compare job)")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    run_training(config, overwrite=True, from_scratch=bool(job["from_scratch"]))
    return int(torch.cuda.max_memory_allocated()) if cuda else None


def end_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to end this child when the comparison that started it dies (SIGKILL leaves it no time to stop its
    children): an orphaned run kept training into a folder the next comparison clears. Elsewhere a no-op."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        raise SystemExit(f"error: the comparison that started this run (process {parent_pid}) has ended")


def child_main(argv: Sequence[str]) -> int:
    """Entry of a run's child process: ``python -m nlp_transfer.compare JOB.json`` (written by :func:`train_in_child`).

    Writes the job's result file: its own peak memory, and the error that ended the run if one did; exits like
    ``nlp-transfer train``.
    """
    from nlp_transfer.cli.guard import guard, quiet_libraries

    if len(argv) != 1:
        print("usage: python -m nlp_transfer.compare JOB.json (nlp-transfer compare writes the job)", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    end_with_parent(job.get("parent_pid"))
    result = Path(job["result"])
    quiet_libraries(bool(job["debug"]))

    def action() -> None:
        try:
            peak = _train_job(job)
        except BaseException as err:
            result.write_text(json.dumps({"error": _one_line(err), "peak_rss_bytes": own_peak_rss_bytes()}), encoding="utf-8")
            raise
        result.write_text(json.dumps({"cuda_peak_bytes": peak, "peak_rss_bytes": own_peak_rss_bytes()}), encoding="utf-8")

    return guard(bool(job["debug"]), action)
