"""What ranking costs against fine-tuning every candidate, both measured as whole processes (issue #18).

    python benchmarks/rank_cost.py --dataset conll --sample 500 --threads 1 --repeats 3
    python benchmarks/rank_cost.py --dataset books --sample 500 --threads 1 --repeats 3

rank_vs_finetune.py charges the whole ranking (its loading, encoding and estimators) against the fine-tuning
loops alone. A user who fine-tunes every candidate instead runs one `nlp-transfer train` per candidate, and each
of those processes starts Python, imports, reads the data, loads the model, scores validation and saves. This
script times both sides as a user meets them, on the same config as rank_vs_finetune.py (--train-rows rows,
--eval-rows validation rows, batch 32, one epoch, the same candidates ranked on the mean of their layers):

- ranking: `nlp-transfer rank CONFIG --models ... --sample N --estimators logme`, launch to exit, median of
  --repeats;
- fine-tuning: one fresh process per candidate, launch to exit: `nlp-transfer train CONFIG transfer.depth=K
  transfer.pooling=P`, and for the random control a Python process that calls ``run_training(...,
  from_scratch=True)`` (there is no `train` flag for random weights; `compare` trains its scratch run so).

It prints both ratios: ranking against the fine-tuning processes, and against their training loops alone
(``train_seconds`` in each run_info.json, the figure rank_vs_finetune.py uses). Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import report_header, setup, write_result
from process_speed import console_script, launch
from rank_vs_finetune import base_config, candidate_specs, scored_spec

#: the random control's fine-tuning: `nlp-transfer train` has no flag for random weights
SCRATCH_RUN = (
    "import sys; from nlp_transfer.config import load_config; from nlp_transfer.pipeline import run_training; "
    "run_training(load_config(sys.argv[1], sys.argv[2:]), overwrite=True, from_scratch=True)"
)


def fine_tune_command(spec: str, config: Any, config_path: Path, output_dir: Path) -> list[str]:
    """The whole-process fine-tuning of one candidate spec (``@depth=K+pooling=mean``, or the random control)."""
    from nlp_transfer.rank import parse_candidate

    candidate = parse_candidate(spec, default_model=config.model)  # as rank_vs_finetune.py reads its specs
    overrides = [f"output_dir={output_dir}", "training.epochs=1"]
    if candidate.init == "random":
        return [sys.executable, "-c", SCRATCH_RUN, str(config_path), *overrides]
    overrides += [f"transfer.depth={candidate.depth}", f"transfer.pooling={candidate.pooling}"]
    return [console_script(), "train", str(config_path), *overrides, "--overwrite"]


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Time the ranking --repeats times and each candidate's fine-tuning once; every wall and loop second."""
    from nlp_transfer.config import save_config

    config = base_config(args.dataset, args, folder)
    config_path = folder / "config.yaml"
    save_config(config, config_path)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    specs = candidate_specs(config.task)
    models = ",".join(scored_spec(spec, "mean") for spec in specs)
    rank = [console_script(), "rank", str(config_path), "--models", models, "--sample", str(args.sample)]
    rank += ["--estimators", "logme", "--output", str(folder / "rank")]
    rank_walls = []
    for repeat in range(args.repeats):
        rank_walls.append(launch(rank, env, folder / f"rank-{repeat}.log")[1])
        print(f"rank {repeat}: {rank_walls[-1]:.1f} s", flush=True)
    tunes = {}
    for number, spec in enumerate(specs):
        out = folder / f"run-{number}"
        _, wall = launch(fine_tune_command(spec, config, config_path, out), env, folder / f"train-{number}.log")
        info = json.loads((out / "run_info.json").read_text(encoding="utf-8"))
        tunes[spec] = {"wall_seconds": round(wall, 2), "train_seconds": info["train_seconds"]}
        print(f"fine-tune {spec}: {wall:.1f} s (loop {info['train_seconds']:.1f} s)", flush=True)
    return {"rank_walls": [round(w, 2) for w in rank_walls], "fine_tuning": tunes}


def summary(result: dict[str, Any]) -> str:
    """The ranking's median wall against the fine-tuning processes' walls and their loops."""
    rank = statistics.median(result["rank_walls"])
    walls = sum(t["wall_seconds"] for t in result["fine_tuning"].values())
    loops = sum(t["train_seconds"] for t in result["fine_tuning"].values())
    return (
        f"ranking (whole command, median of {len(result['rank_walls'])}): {rank:.1f} s\n"
        f"fine-tuning every candidate ({len(result['fine_tuning'])} whole processes): {walls:.1f} s -> "
        f"ranking costs {100 * rank / walls:.1f} %\n"
        f"their training loops alone: {loops:.1f} s -> ranking costs {100 * rank / loops:.1f} %"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="conll", help="one of rank_vs_finetune.py's datasets")
    parser.add_argument("--sample", type=int, default=500, help="training rows each candidate encodes for ranking")
    parser.add_argument("--train-rows", type=int, default=4000, help="training rows (sentences for CoNLL)")
    parser.add_argument("--eval-rows", type=int, default=1000, help="validation rows each fine-tuned candidate scores")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the ranking command (fine-tuning runs once)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    setup(args.threads)
    with tempfile.TemporaryDirectory(prefix="rank-cost-") as tmp:
        result = measure(args, Path(tmp))
    print(summary(result))
    path = write_result(
        f"rank_cost_{args.dataset}_sample{args.sample}", {**report_header(args.threads), "settings": vars(args), **result}
    )
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
