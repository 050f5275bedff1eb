"""Stream a 1,000,000-line file through ``nlp-transfer predict`` and watch its memory stay flat.

    python benchmarks/predict_stream.py --run runs/sst2-minilm-full --lines 1000000 --threads 2
    python benchmarks/predict_stream.py --train-rows 2000 --threads 2   # trains a small SST-2 run first

Writes a ``--lines``-line text file into a temporary folder by cycling the SST-2 dev sentences, then runs
``nlp-transfer predict RUN --input FILE --batch-size 32 --backend BACKEND`` as a child process with OMP_NUM_THREADS
set to ``--threads``, its JSON lines going to a file. With ``--backend onnx`` (default) a run without RUN/onnx is
exported first (int8, max_drop=100, into RUN/onnx). Every ``--interval`` seconds (default 0.5) the child's resident
memory (children included, psutil) and the lines it has written so far are sampled. Reported: lines/s (overall,
and from the first output line, i.e. without the model load; the child's stdout is block-buffered, so that
also leaves out the first ~1,000 lines), the RSS when 10/25/50/75/100 % of the lines were written,
the sampled peak and the kernel's high-water mark of the child (VmHWM, read at the last sample), and the RSS growth from the 10 % to the 100 % point; the
output must hold exactly ``--lines`` JSON lines. Result: predict_stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from common import SST2, dataset_present, read_sst2, report_header, setup, write_result

MIB = 1024 * 1024
FRACTIONS = (0.10, 0.25, 0.50, 0.75, 1.00)


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained SST-2 run directory (default: train one with --train-rows rows)")
    parser.add_argument("--train-rows", type=int, default=2000, help="training rows when no --run is given")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the file to predict")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="onnx", help="predict's --backend")
    parser.add_argument("--batch-size", type=int, default=32, help="predict's --batch-size")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the child (and threads of training)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    return parser.parse_args()


def prepared_run(args: argparse.Namespace, folder: Path) -> Path:
    """``--run``, or a small SST-2 run as export_speed trains it; exported to RUN/onnx first for the onnx backend."""
    from export_speed import trained_run

    training = argparse.Namespace(run=args.run, train_rows=args.train_rows, threads=args.threads, data="sst2", max_length=128)
    run = trained_run(training, folder)
    if args.backend == "onnx" and not (run / "onnx" / "export.json").is_file():
        from nlp_transfer.export.command import export_run

        export_run(run, int8=True, max_drop=100.0)  # the figures, not a gate
    return run


def write_input(path: Path, lines: int) -> int:
    """Write ``lines`` lines cycling the SST-2 dev sentences; returns the file's size in bytes."""
    texts, _ = read_sst2(SST2 / "dev.tsv")
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(f"{text}\n" for text in islice(cycle(texts), lines))
    return path.stat().st_size


def predict_command(run: Path, source: Path, args: argparse.Namespace) -> list[str]:
    """The ``nlp-transfer predict`` command line (the console script beside this Python, else the one on PATH)."""
    script = Path(sys.executable).parent / "nlp-transfer"
    program = str(script) if script.is_file() else shutil.which("nlp-transfer") or "nlp-transfer"
    options = ["--input", str(source), "--batch-size", str(args.batch_size), "--backend", args.backend]
    return [program, "predict", str(run), *options]


def high_water_mib(pid: int) -> float | None:
    """The kernel's peak resident memory (VmHWM) of process ``pid`` so far, in MiB; None once it has gone.

    Not the child's ru_maxrss from wait4: Linux carries the parent's peak (a model trained here) into the child.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def tree_rss(process: Any) -> int | None:
    """Resident bytes of ``process`` and its children, or None once it has gone."""
    import psutil

    try:
        return process.memory_info().rss + sum(child.memory_info().rss for child in process.children(recursive=True))
    except psutil.Error:
        return None


class LineCounter:
    """Newlines written so far to a growing file, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("rb")
        self.count = 0

    def update(self) -> int:
        """Count the newlines written since the last call; returns the total."""
        while chunk := self.handle.read(1 << 20):
            self.count += chunk.count(b"\n")
        return self.count


def watch(command: list[str], out: Path, err: Path, threads: int, interval: float) -> dict[str, Any]:
    """Run ``command`` (stdout to ``out``), sampling (seconds, lines written, RSS bytes) until it exits."""
    import psutil

    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    samples: list[tuple[float, int, int]] = []
    started = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=environment)
        process, counter, first_line, high_water = psutil.Process(child.pid), LineCounter(out), None, None
        while True:
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            rss, lines, high_water = tree_rss(process), counter.update(), high_water_mib(child.pid) or high_water
            now = time.perf_counter() - started
            if rss is not None:
                samples.append((now, lines, rss))
            if first_line is None and lines:
                first_line = now
            time.sleep(interval)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, so Popen must not wait again
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "first_line": first_line, "samples": samples, "returncode": child.returncode, "hwm": high_water}


def at_fractions(samples: list[tuple[float, int, int]], lines: int) -> dict[str, dict[str, float]]:
    """The first sample at or past each fraction of ``lines`` written (the last sample when none reached it)."""
    points = {}
    for fraction in FRACTIONS:
        reached = [s for s in samples if s[1] >= fraction * lines] or samples[-1:]
        seconds, written, rss = reached[0]
        points[f"{fraction:.0%}"] = {"rss_mib": round(rss / MIB, 1), "lines_written": written, "seconds": round(seconds, 1)}
    return points


def check_output(path: Path) -> dict[str, Any]:
    """Lines of the output and whether each is a JSON object."""
    lines = bad = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            lines += 1
            try:
                bad += not isinstance(json.loads(line), dict)
            except ValueError:
                bad += 1
    return {"output_lines": lines, "invalid_json_lines": bad}


def figures(watched: dict[str, Any], lines: int, output: dict[str, Any]) -> dict[str, Any]:
    """Throughput, RSS at the fractions of the lines written, peaks, growth from 10 % to 100 %, and the output check."""
    samples = watched["samples"]
    points = at_fractions(samples, lines)
    streaming = watched["seconds"] - (watched["first_line"] or 0.0)
    return {
        "seconds": round(watched["seconds"], 1),
        "lines_per_second": round(lines / watched["seconds"], 1),
        "lines_per_second_after_first_line": round(lines / streaming, 1) if streaming > 0 else None,
        "samples": len(samples),
        "rss_at_lines_written": points,
        "peak_rss_sampled_mib": round(max(s[2] for s in samples) / MIB, 1) if samples else None,
        "peak_rss_vmhwm_mib": watched["hwm"],
        "rss_growth_10_to_100_mib": round(points["100%"]["rss_mib"] - points["10%"]["rss_mib"], 1) if samples else None,
        **output,
        "output_ok": output["output_lines"] == lines and output["invalid_json_lines"] == 0,
    }


def main() -> int:
    """Prepare the run and the file, stream it through ``nlp-transfer predict``, and write the report."""
    args = parse_args()
    if not dataset_present(SST2, "dev.tsv", "SST-2"):
        return 1
    setup(args.threads)
    report: dict[str, Any] = {**report_header(args.threads), "lines": args.lines, "backend": args.backend}
    report["batch_size"] = args.batch_size
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        run = prepared_run(args, folder)
        report["input_mib"] = round(write_input(folder / "input.txt", args.lines) / MIB, 1)
        command = predict_command(run, folder / "input.txt", args)
        report["predict_command"] = " ".join(command)
        watched = watch(command, folder / "out.jsonl", folder / "err.txt", args.threads, args.interval)
        stderr = (folder / "err.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        report["returncode"], report["stderr_last_line"] = watched["returncode"], stderr[-1] if stderr else ""
        if watched["returncode"] != 0:
            print("\n".join(stderr[-20:]), file=sys.stderr)
        report.update(figures(watched, args.lines, check_output(folder / "out.jsonl")))
    path = write_result("predict_stream", report)
    print_table(report)
    print(f"results: {path}")
    return 0 if report["output_ok"] and watched["returncode"] == 0 else 1


def print_table(report: dict[str, Any]) -> None:
    """A short Markdown table: RSS at each fraction of the lines written, then the totals."""
    print(f"{report['lines']:,} lines, backend {report['backend']}, batch {report['batch_size']}")
    print("| lines written | RSS MiB | seconds |\n|---|---|---|")
    for fraction, point in report["rss_at_lines_written"].items():
        print(f"| {fraction} ({point['lines_written']:,}) | {point['rss_mib']} | {point['seconds']} |")
    print(
        f"lines/s {report['lines_per_second']} (after the first line {report['lines_per_second_after_first_line']}); "
        f"peak RSS {report['peak_rss_sampled_mib']} MiB sampled, {report['peak_rss_vmhwm_mib']} MiB VmHWM; "
        f"growth 10 %->100 % {report['rss_growth_10_to_100_mib']} MiB; output lines {report['output_lines']:,} "
        f"({'ok' if report['output_ok'] else 'NOT ok'})"
    )


if __name__ == "__main__":
    sys.exit(main())
