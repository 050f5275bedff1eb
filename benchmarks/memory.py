"""Peak memory of each transfer strategy, each measured in a fresh process.

    python benchmarks/memory.py --train-rows 2000 --threads 2

Every variant trains the default model (MiniLM-L6) for one epoch on the same SST-2 rows (batch 32,
max_length 128) in its own Python process, so no run inherits another's heap. The figure is the
process's peak resident set (``ru_maxrss``). The ``baseline`` variant does everything but train: it
imports the libraries, reads and tokenizes the data and loads the model, so ``peak - baseline`` is what
training itself added (activations, gradients, optimizer state, cached features). On a GPU the same
script reports ``torch.cuda.max_memory_allocated`` instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SST2, SST2_CONFIG, dataset_present, report_header, run_recipe, sst2_overrides, write_result

VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "full": ["strategy=full"],
    "full_gradient_checkpointing": ["strategy=full", "training.gradient_checkpointing=true"],
    "full_bf16": ["strategy=full", "training.mixed_precision=bf16"],
    "freeze_layers_3": ["strategy=freeze_layers", "transfer.freeze_layers=3"],
    "lora": ["strategy=lora", "training.learning_rate=5e-4"],
    "frozen_cached": ["strategy=frozen", "training.learning_rate=1e-3"],
    "frozen_uncached": ["strategy=frozen", "training.learning_rate=1e-3", "transfer.cache_features=false"],
}


def child(variant: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Run one variant in this process and report its peak memory."""
    import torch

    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import build_task_and_data

    overrides = [*sst2_overrides(out, args), *VARIANTS[variant]]
    if variant == "baseline":
        torch.set_num_threads(args.threads)
        task, data = build_task_and_data(load_config(SST2_CONFIG, overrides))
        model = task.build_model()
        _ = {name: task.preprocess(split, name) for name, split in data.splits.items()}, model
    else:
        run_recipe(SST2_CONFIG, overrides)
    if torch.cuda.is_available():
        return {"peak_mb": torch.cuda.max_memory_allocated() / 2**20, "kind": "cuda_max_allocated"}
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "kind": "process_peak_rss"}


def main() -> int:
    """Run every variant in a child process, print the table and save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT:" + json.dumps(child(args.child, args, Path(args.out))))
        return 0
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--child", variant, "--out", str(Path(tmp) / variant),
                       "--train-rows", str(args.train_rows), "--threads", str(args.threads)]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT:")), None)
            if proc.returncode or line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            results[variant] = json.loads(line[len("RESULT:") :])
            print(f"{variant:<30}{results[variant]['peak_mb']:>10.0f} MB", flush=True)
    base = results["baseline"]["peak_mb"]
    for values in results.values():
        values["training_mb"] = values["peak_mb"] - base
    report = {
        **report_header(args.threads),
        "train_rows": args.train_rows,
        "results": results,
    }
    print(f"\nPeak memory, SST-2 first {args.train_rows} rows, 1 epoch, batch 32 ({results['baseline']['kind']}):")
    print(f"{'':<30}{'peak MB':>10}{'training MB':>13}")
    for name, values in results.items():
        print(f"{name:<30}{values['peak_mb']:>10.0f}{values['training_mb']:>13.0f}")
    write_result(f"memory_{args.train_rows}", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
