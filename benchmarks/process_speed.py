"""Whole-process speed: `nlp-transfer train` against a plain Trainer script, each a fresh process, same rows, one run.

    python benchmarks/process_speed.py --train-rows 8000 --threads 2 --repeats 3 --precisions fp32,bf16
    python benchmarks/process_speed.py --train-rows 4000 --threads 2 --repeats 1 --compile   # what torch.compile gives

What a user meets, end to end: the interpreter's start-up, the imports, loading the model, reading and tokenizing,
the training loop, scoring SST-2 dev, writing the model. Side (a) is `nlp-transfer train sst2_full.yaml` with
benchmarks/common.py's ``sst2_overrides`` (the first --train-rows rows of train.tsv, all trained on, dev.tsv as the
validation split scored after the epoch) and ``data.test_file=null``, so that dev is scored once on each side (the
recipe's test split is dev as well, which would score it twice). Side (b) is benchmarks/trainer_script.py, a plain
Trainer fine-tuning script (length-grouped, as speed.py's trainer_grouped) on the same rows, scoring the same dev
rows. Both: one epoch, batch 32, lr 5e-5, max_length 128, seed 42, OMP_NUM_THREADS=MKL_NUM_THREADS=--threads and
torch threads --threads; bf16 is ``training.mixed_precision=bf16`` against the Trainer's ``bf16=True``. Every repeat
runs every precision's two sides (first side alternating between repeats); wall time is the parent's
``time.perf_counter`` from launch to exit; medians of --repeats are reported with the ratio Trainer / nlp-transfer
(above 1: nlp-transfer is faster).

Stage breakdown, without touching the package. Trainer: the script's own clock (trainer_script.py). nlp-transfer:
imports = a fresh ``python -c "import nlp_transfer.cli, nlp_transfer.pipeline"`` timed from inside (with its
start-up), once per repeat; set-up (config, model, data) = launch to RUN/config.yaml written, less start-up and
imports; training loop = run_info.json ``train_seconds``; evaluation and the rest of training = to RUN/config.json
written (the final save begins), less the loop; saving = to RUN/run_info.json written; exit = the rest of the wall.
Modules nlp-transfer imports lazily during the run count in set-up, not imports.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_MODEL,
    MAX_LENGTH,
    REPO,
    SST2,
    SST2_CONFIG,
    dataset_present,
    report_header,
    sst2_overrides,
    sst2_parser,
    write_result,
)

STAGES = ("startup+imports", "set-up", "training loop", "eval+rest of training", "saving", "exit+other")
#: the side ``--compile`` adds: nlp-transfer with ``training.torch_compile=true`` (its loop time includes compiling)
COMPILED = "nlp-transfer+compile"
#: the imports as `nlp-transfer train` makes them (collector paused, nlp_transfer/collector.py)
IMPORT_PROBE = (
    "import time; t = time.time(); import nlp_transfer.cli, nlp_transfer.collector\n"
    "with nlp_transfer.collector.imports_paused('nlp_transfer.pipeline'): import nlp_transfer.pipeline\n"
    "print(t, time.time() - t)"
)


def console_script() -> str:
    """The ``nlp-transfer`` entry point beside this interpreter (no pyenv shim in between), else the one on PATH."""
    beside = Path(sys.executable).parent / "nlp-transfer"
    found = str(beside) if beside.is_file() else shutil.which("nlp-transfer")
    if found is None:
        raise SystemExit("error: the nlp-transfer console script is not installed (pip install -e .)")
    return found


def launch(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run ``command`` to its end with its output in ``log``; returns its launch ``time.time()`` and wall seconds."""
    with log.open("w", encoding="utf-8") as out:
        started, clock = time.time(), time.perf_counter()
        code = subprocess.run(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        wall = time.perf_counter() - clock
    if code != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise SystemExit(f"error: {command[0]} {command[1]} exited with {code}:\n{tail}")
    return started, wall


def nlp_side(args: Any, precision: str, out: Path, env: dict[str, str], *, extra: Sequence[str] = ()) -> dict[str, Any]:
    """One ``nlp-transfer train`` process (``extra``: more overrides, a variant's); wall, accuracy, stages."""
    overrides = sst2_overrides(out / "run", args)
    mixed = "bf16" if precision == "bf16" else "no"
    command = [console_script(), "train", str(SST2_CONFIG), *overrides, f"training.max_length={MAX_LENGTH}"]
    command += ["data.test_file=null", f"training.mixed_precision={mixed}", *extra]
    started, wall = launch(command, env, out / "nlp.log")
    run = out / "run"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    info = json.loads((run / "run_info.json").read_text(encoding="utf-8"))
    scored = metrics.get("test") or metrics["validation"]
    written = {name: (run / name).stat().st_mtime - started for name in ("config.yaml", "config.json", "run_info.json")}
    return {
        "wall_seconds": wall,
        "dev_accuracy": scored["accuracy"],
        "train_seconds": info["train_seconds"],
        "examples": info["examples"],
        "written_after": written,
    }


def trainer_side(args: Any, model_path: str, precision: str, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """One ``python benchmarks/trainer_script.py`` process; its wall time, dev accuracy and its own stage times."""
    stages_file = out / "stages.json"
    command = [sys.executable, str(REPO / "benchmarks" / "trainer_script.py"), "--model", model_path]
    command += ["--train-rows", str(args.train_rows), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    command += ["--lr", str(args.learning_rate), "--max-length", str(MAX_LENGTH), "--threads", str(args.threads)]
    command += ["--seed", str(args.seed), "--output-dir", str(out / "model"), "--stages-json", str(stages_file)]
    command += ["--bf16"] if precision == "bf16" else []
    started, wall = launch([*command, "--launch-time", repr(time.time())], env, out / "trainer.log")
    report = json.loads(stages_file.read_text(encoding="utf-8"))
    return {
        "wall_seconds": wall,
        "dev_accuracy": report["dev_accuracy"],
        "train_seconds": report["train_runtime"],
        "examples": {"train": report["train_rows"], "validation": report["dev_rows"]},
        "stages": report["stages"],
        "finished_after": report["finished"] - started,
    }


def parse_variants(specs: Sequence[str]) -> dict[str, tuple[str | None, list[str]]]:
    """``--variant "NAME [code=PATH] [key=value ...]"`` -> side ``nlp-transfer+NAME``: its code tree and overrides.

    ``code=PATH`` runs the nlp_transfer package of another checkout (PYTHONPATH=PATH), e.g. the commit before a change,
    so a change is measured against its own baseline in the same run.
    """
    variants = {}
    for spec in specs:
        name, *words = spec.split()
        code = next((w.split("=", 1)[1] for w in words if w.startswith("code=")), None)
        if code is not None and not (Path(code) / "nlp_transfer").is_dir():
            raise SystemExit(f"error: --variant {name}: {code} holds no nlp_transfer package")
        variants[f"nlp-transfer+{name}"] = (code, [w for w in words if not w.startswith("code=")])
    return variants


def import_probe(env: dict[str, str]) -> float:
    """Start-up and import seconds of ``nlp_transfer.cli`` and ``nlp_transfer.pipeline`` in a fresh interpreter."""
    started = time.time()
    printed = subprocess.run([sys.executable, "-c", IMPORT_PROBE], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    entered, imports = (float(value) for value in printed.stdout.split())
    return entered - started + imports


def nlp_breakdown(run: dict[str, Any], imports: float) -> dict[str, float]:
    """nlp-transfer's stages from the file times of its run folder, ``train_seconds`` and the import probe."""
    written, train = run["written_after"], run["train_seconds"]
    return {
        "startup+imports": imports,
        "set-up": written["config.yaml"] - imports,
        "training loop": train,
        "eval+rest of training": written["config.json"] - written["config.yaml"] - train,
        "saving": written["run_info.json"] - written["config.json"],
        "exit+other": run["wall_seconds"] - written["run_info.json"],
    }


def trainer_breakdown(run: dict[str, Any]) -> dict[str, float]:
    """The Trainer script's stages in the same columns; its ``train_runtime`` is the loop, the rest of train() joins eval."""
    stages = run["stages"]
    return {
        "startup+imports": stages.get("startup", 0.0) + stages["imports"],
        "set-up": stages["load"] + stages["data"],
        "training loop": run["train_seconds"],
        "eval+rest of training": stages["train"] - run["train_seconds"] + stages["eval"],
        "saving": stages["save"],
        "exit+other": run["wall_seconds"] - run["finished_after"],
    }


def run_all(args: Any, model_path: str, tmp: Path) -> tuple[dict[str, list[dict]], list[float]]:
    """Every precision's two sides ``--repeats`` times, interleaved (first side alternating), and the import probes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    sides = {
        "nlp-transfer": lambda precision, out: nlp_side(args, precision, out, env),
        "trainer": lambda precision, out: trainer_side(args, model_path, precision, out, env),
    }
    if args.compile:
        sides[COMPILED] = lambda precision, out: nlp_side(args, precision, out, env, extra=["training.torch_compile=true"])
    for name, (code, overrides) in parse_variants(args.variant).items():
        side_env = env if code is None else {**env, "PYTHONPATH": code}
        sides[name] = lambda precision, out, e=side_env, o=overrides: nlp_side(args, precision, out, e, extra=o)
    runs: dict[str, list[dict]] = {}
    probes = []
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for precision in args.precisions:
            for side in order:
                out = tmp / f"{side}-{precision}-{repeat}"
                out.mkdir()
                result = sides[side](precision, out)
                print(f"repeat {repeat} {precision} {side}: {result['wall_seconds']:.1f} s, dev {result['dev_accuracy']:.4f}")
                runs.setdefault(f"{side} {precision}", []).append(result)
        probes.append(import_probe(env))
    return runs, probes


def summarize(runs: dict[str, list[dict]], probes: list[float]) -> dict[str, dict[str, Any]]:
    """Per side and precision: median wall, accuracy, loop time and stage breakdown, plus every run's raw figures."""
    imports = statistics.median(probes)
    summary = {}
    for name, measured in runs.items():
        split = [nlp_breakdown(r, imports) if name.startswith("nlp") else trainer_breakdown(r) for r in measured]
        stages = {stage: statistics.median(s[stage] for s in split) for stage in STAGES}
        wall = statistics.median(r["wall_seconds"] for r in measured)
        summary[name] = {
            "wall_seconds": wall,
            "dev_accuracy": statistics.median(r["dev_accuracy"] for r in measured),
            "train_seconds": statistics.median(r["train_seconds"] for r in measured),
            "examples": measured[0]["examples"],
            "stages": stages,
            "everything_else_seconds": wall - stages["startup+imports"] - stages["training loop"],
            "runs_wall_seconds": [round(r["wall_seconds"], 2) for r in measured],
            "runs": measured,
        }
    for name, ours in summary.items():
        side, precision = name.split()
        if side != "trainer":
            theirs = summary[f"trainer {precision}"]
            ours["ratio_trainer_over_nlp"] = theirs["wall_seconds"] / ours["wall_seconds"]
            ours["loop_ratio_trainer_over_nlp"] = theirs["train_seconds"] / ours["train_seconds"]
    return summary


def print_report(args: Any, summary: dict[str, dict[str, Any]]) -> None:
    """The Markdown tables: wall time, accuracy and ratio per side, then the stage breakdown."""
    print(
        f"\nSST-2 first {args.train_rows} rows, {args.epochs} epoch(s), batch {args.batch_size}, lr {args.learning_rate}, "
        f"{args.threads} threads, medians of {args.repeats}\n"
    )
    print("| side | precision | median wall s | dev accuracy | training loop s | wall ratio trainer/nlp | loop ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, row in summary.items():
        side, precision = name.split()
        ratios = [f"{row[k]:.2f}x" if k in row else "" for k in ("ratio_trainer_over_nlp", "loop_ratio_trainer_over_nlp")]
        print(
            f"| {side} | {precision} | {row['wall_seconds']:.1f} | {row['dev_accuracy']:.4f} | {row['train_seconds']:.1f} "
            f"| {ratios[0]} | {ratios[1]} |"
        )
    print("\n| side | precision | " + " | ".join(STAGES) + " | everything else | wall |")
    print("|---|---|" + "---:|" * (len(STAGES) + 2))
    for name, row in summary.items():
        cells = " | ".join(f"{row['stages'][stage]:.1f}" for stage in STAGES)
        print(f"| {' | '.join(name.split())} | {cells} | {row['everything_else_seconds']:.1f} | {row['wall_seconds']:.1f} |")
    print("\neverything else = wall - startup+imports - training loop (seconds)")


def main() -> int:
    """Run both sides as fresh processes, print the tables and save process_speed.json."""
    parser = sst2_parser(__doc__, epochs=1, learning_rate=5e-5)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")
    parser.add_argument("--compile", action="store_true", help=f"add a third side, {COMPILED} (training.torch_compile=true)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='another nlp-transfer side, "NAME [code=PATH] [key=value ...]": other overrides, or the package of another '
        "checkout (code=PATH) to measure a change against its baseline in the same run; repeatable",
    )
    parser.set_defaults(repeats=3)
    args = parser.parse_args()
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not set(args.precisions) <= {"fp32", "bf16"}:
        parser.error("--precisions takes fp32 and/or bf16")
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    from nlp_transfer.models import resolve_model

    model_path = resolve_model(DEFAULT_MODEL).path
    with tempfile.TemporaryDirectory(prefix="process-speed-") as tmp:
        runs, probes = run_all(args, model_path, Path(tmp))
    summary = summarize(runs, probes)
    print_report(args, summary)
    report = {**report_header(args.threads), "repeats": args.repeats, "import_probe_seconds": probes, "results": summary}
    print(f"\nwritten to {write_result('process_speed', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
