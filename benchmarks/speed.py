"""Training and prediction speed against the Trainer and pipeline: same model, same SST-2 rows, one run.

    python benchmarks/speed.py --train-rows 8000 --threads 2

Training variants, each one epoch at batch 32 and lr 5e-5 on the same rows, scored on all 872 dev rows:
  trainer_random   the Trainer as its example scripts run it (random order, dynamic padding)
  trainer_grouped  the Trainer at its best (train_sampling_strategy="group_by_length")
  nlp_fp32         nlp-transfer's loop in float32 (length-grouped batches, training.skip_unread_positions=true,
                   training.fast_dropout_masks=true: its defaults)
  nlp_fp32_all_positions  the same with training.skip_unread_positions=false (the last layer computes every
                   position, as the Trainer's model does): what that setting alone gives
  nlp_fp32_torch_masks    the same with training.fast_dropout_masks=false (torch draws the dropout masks, as in
                   the Trainer): what that setting alone gives
  nlp_bf16         nlp-transfer's loop with bf16 autocast (training.mixed_precision=bf16)
Model FLOPs utilisation (MFU) = 6 x non-embedding parameters x non-pad training tokens / train time,
divided by this machine's median matmul rate in the same precision (measured first, 1024^3 matmuls; bf16 only
when a bf16 variant runs). It counts the whole model's FLOPs, the work the Trainer does: a run that skips the last
layer's unread positions does about 14 % fewer, so its MFU is an effective one (nlp_fp32_all_positions gives the
loop's own). Each run also measures the rate just before it (30 products), and ``mfu_against_rate_before`` is
the median of the runs' MFUs against those: a second denominator for machines whose speed drifts between
minutes (on such a machine neither is stable; both figures are printed).
Prediction: `nlp-transfer predict` (predict_texts) against transformers.pipeline on the dev sentences
at the same batch size (an untimed pass each, then three timed ones interleaved; medians), with the labels
compared. The float32 and bf16 models' dev predictions are compared too (how many labels agree, the largest
probability difference), so equal accuracies are shown to come from two different models. With --repeats N
every variant runs N times, interleaved, and the medians are reported (each run's figures are kept in the JSON).
With --trainer-bf16 a fifth variant runs, trainer_grouped_bf16: the Trainer at its best with bf16=True, the
like-for-like partner of nlp_bf16 (its ratio line is added after the others). On a CUDA machine both sides train
on the GPU and the matmul rate is the GPU's; prediction stays on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    SST2,
    SST2_CONFIG,
    dataset_present,
    median_seconds,
    medians,
    non_embedding_parameters,
    read_sst2,
    recipe_figures,
    report_header,
    run_interleaved,
    run_recipe,
    setup,
    sst2_overrides,
    sst2_parser,
    timer,
    trainer_on_sst2,
    write_result,
)

TABLE_EXCLUDES = ("predict", "fp32_vs_bf16")


def matmul_rate(dtype: Any, size: int = 1024, repeats: int = 15) -> float:
    """Median GFLOP/s of size x size matmuls in ``dtype``, on the GPU when there is one."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.randn(size, size, dtype=dtype, device=device), torch.randn(size, size, dtype=dtype, device=device)

    def multiply() -> None:
        """One matmul, finished (CUDA runs asynchronously)."""
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / median_seconds(multiply, repeats) / 1e9


def training_flops(model_path: str, texts: list[str]) -> dict[str, int]:
    """Non-pad training tokens, non-embedding parameters and 6 x their product (one epoch's model FLOPs)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    probe = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    non_embedding = non_embedding_parameters(probe)
    return {"tokens": tokens, "non_embedding": non_embedding, "flops": 6 * non_embedding * tokens}


def trainer_run(model_path: str, args: argparse.Namespace, sampling: str, bf16: bool = False) -> dict[str, float]:
    """One Trainer epoch with the given sampling strategy (and bf16 autocast when asked)."""
    settings = {"batch_size": args.batch_size, "learning_rate": 5e-5, "epochs": 1, "seed": args.seed}
    return trainer_on_sst2(model_path, args.train_rows, sampling=sampling, bf16=bf16, **settings)


def nlp_run(args: argparse.Namespace, precision: str, out: Path, *extra: str) -> dict[str, Any]:
    """One epoch of nlp-transfer's sentiment recipe config (``extra``: more key=value overrides)."""
    overrides = sst2_overrides(out, args, learning_rate=5e-5, epochs=1)
    result = run_recipe(SST2_CONFIG, [*overrides, f"training.mixed_precision={precision}", *extra])
    return {**recipe_figures(result, "accuracy", "dev_accuracy"), "run_dir": str(out)}


def run_variants(
    model_path: str, args: argparse.Namespace, tmp: Path, flops: int, rates: dict[str, float | None]
) -> dict[str, dict]:
    """Every training variant not skipped, ``--repeats`` times interleaved; medians and MFU per variant."""
    variants = {
        "trainer_random": lambda out: trainer_run(model_path, args, "random"),
        "trainer_grouped": lambda out: trainer_run(model_path, args, "group_by_length"),
        "nlp_fp32": lambda out: nlp_run(args, "no", out, "training.skip_unread_positions=true"),
        "nlp_fp32_all_positions": lambda out: nlp_run(args, "no", out, "training.skip_unread_positions=false"),
        "nlp_fp32_torch_masks": lambda out: nlp_run(args, "no", out, "training.fast_dropout_masks=false"),
        "nlp_bf16": lambda out: nlp_run(args, "bf16", out),
        "trainer_grouped_bf16": lambda out: trainer_run(model_path, args, "group_by_length", bf16=True),
    }
    skip = set(filter(None, args.skip.split(","))) | (set() if args.trainer_bf16 else {"trainer_grouped_bf16"})
    chosen = {name: with_matmul_rate(side, name.endswith("bf16")) for name, side in variants.items() if name not in skip}
    runs = run_interleaved(chosen, args.repeats, tmp)
    results = medians(runs, ("samples_per_second", "train_seconds", "dev_accuracy", "matmul_gflops_before"))
    for name, measured in runs.items():
        results[name]["runs_samples_per_second"] = [round(m["samples_per_second"], 2) for m in measured]
        if "run_dir" in measured[0]:
            results[name]["run_dir"] = measured[0]["run_dir"]
        rate = rates["bf16" if name.endswith("bf16") else "fp32"]
        results[name]["mfu"] = flops / results[name]["train_seconds"] / 1e9 / rate
        each = [flops / m["train_seconds"] / 1e9 / m["matmul_gflops_before"] for m in measured]
        results[name]["runs_mfu_against_rate_before"] = [round(m, 3) for m in each]
        results[name]["mfu_against_rate_before"] = statistics.median(each)
    return results


def with_matmul_rate(side: Callable[[Path], dict[str, Any]], bf16: bool) -> Callable[[Path], dict[str, Any]]:
    """``side``, with the machine's matmul rate in its precision measured just before each run (where the machine's
    speed drifts between minutes, an MFU is also taken against the rate of its own moment)."""

    def run(out: Path) -> dict[str, Any]:
        """Measure the rate, then run the side."""
        import torch

        rate = matmul_rate(torch.bfloat16 if bf16 else torch.float32, repeats=30)
        return {**side(out), "matmul_gflops_before": rate}

    return run


def compare_precisions(results: dict[str, dict], dev_texts: list[str]) -> dict[str, Any]:
    """How far the float32 and bf16 models' dev predictions differ (labels agreeing, probability gaps)."""
    import torch

    from nlp_transfer.inference import load_run, text_logits

    probs = {}
    for name in ("nlp_fp32", "nlp_bf16"):
        model, task = load_run(results[name]["run_dir"], device="cpu")
        probs[name] = torch.softmax(torch.from_numpy(text_logits(model, task, dev_texts)), dim=-1)
    same = int((probs["nlp_fp32"].argmax(-1) == probs["nlp_bf16"].argmax(-1)).sum())
    gap = (probs["nlp_fp32"] - probs["nlp_bf16"]).abs()
    return {
        "same_dev_labels": f"{same}/{len(dev_texts)}",
        "max_abs_probability_difference": float(gap.max()),
        "mean_abs_probability_difference": float(gap.mean()),
    }


def compare_predict(run_dir: str, dev_texts: list[str], batch_size: int, rounds: int = 3) -> dict[str, Any]:
    """``predict_texts`` against ``transformers.pipeline`` on the dev sentences: speed and agreement of labels.

    Each side passes over the sentences ``rounds`` times, interleaved (ours, ours with every position of the last
    layer, the pipeline), after one untimed pass each; the medians are compared.
    """
    from transformers import pipeline

    from nlp_transfer.inference import load_run, predict_texts

    model, task = load_run(run_dir, device="cpu")
    classifier = pipeline("text-classification", model=run_dir, device="cpu")
    sides = {
        "ours": lambda: predict_texts(model, task, dev_texts, batch_size=batch_size),
        "all_positions": lambda: predict_texts(model, task, dev_texts, batch_size=batch_size, first_position=False),
        "pipeline": lambda: classifier(dev_texts, batch_size=batch_size, truncation=True, max_length=128),
    }
    outputs = {name: side() for name, side in sides.items()}  # the untimed pass: warm caches, labels compared
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, side in sides.items():
            with timer() as took:
                side()
            seconds[name].append(took["seconds"])
    rate = {name: len(dev_texts) / statistics.median(times) for name, times in seconds.items()}
    same = sum(o["label"] == t["label"] for o, t in zip(outputs["ours"], outputs["pipeline"], strict=True))
    return {
        "nlp_sentences_per_second": rate["ours"],
        "pipeline_sentences_per_second": rate["pipeline"],
        "ratio": rate["ours"] / rate["pipeline"],
        "all_positions_ratio": rate["all_positions"] / rate["pipeline"],
        "runs_seconds": {name: [round(t, 3) for t in times] for name, times in seconds.items()},
        "identical_labels": f"{same}/{len(dev_texts)}",
    }


def print_report(args: argparse.Namespace, rates: dict[str, float | None], results: dict[str, dict]) -> None:
    """The table of variants, the ratios to the Trainer, the precision and prediction comparisons."""
    print(
        f"\nSST-2 first {args.train_rows} rows, 1 epoch, batch {args.batch_size}, {args.threads} threads; "
        f"matmul fp32 {rates['fp32']:.0f} GFLOP/s, bf16 " + (f"{rates['bf16']:.0f} GFLOP/s" if rates["bf16"] else "not measured")
    )
    width = max([17, *(len(name) + 1 for name in results)])
    print(f"{'':<{width}}{'samples/s':>10}{'dev acc':>9}{'MFU':>7}{'MFU, rate before':>18}{'rate before':>13}")
    for name, values in results.items():
        if name not in TABLE_EXCLUDES:
            print(
                f"{name:<{width}}{values['samples_per_second']:>10.1f}{values['dev_accuracy']:>9.4f}{values['mfu']:>7.2f}"
                f"{values['mfu_against_rate_before']:>18.2f}{values['matmul_gflops_before']:>13.0f}"
            )
    trainers = [k for k in ("trainer_random", "trainer_grouped") if k in results]
    for name in ("nlp_fp32", "nlp_fp32_all_positions", "nlp_fp32_torch_masks", "nlp_bf16"):
        if name in results and trainers:
            ratios = {k: results[name]["samples_per_second"] / results[k]["samples_per_second"] for k in trainers}
            print(f"{name} / Trainer: " + ", ".join(f"{v:.2f}x vs {k}" for k, v in ratios.items()))
    if "nlp_bf16" in results and "trainer_grouped_bf16" in results:
        ratio = results["nlp_bf16"]["samples_per_second"] / results["trainer_grouped_bf16"]["samples_per_second"]
        print(f"nlp_bf16 / Trainer bf16: {ratio:.2f}x vs trainer_grouped_bf16")
    if "fp32_vs_bf16" in results:
        c = results["fp32_vs_bf16"]
        print(
            f"fp32 vs bf16 models on dev: same labels {c['same_dev_labels']}, probability difference "
            f"max {c['max_abs_probability_difference']:.4f}, mean {c['mean_abs_probability_difference']:.4f}"
        )
    if "predict" in results:
        p = results["predict"]
        print(
            f"predict {p['nlp_sentences_per_second']:.1f} sentences/s, pipeline {p['pipeline_sentences_per_second']:.1f}: "
            f"{p['ratio']:.2f}x, identical labels {p['identical_labels']}; every position of the last layer: "
            f"{p['all_positions_ratio']:.2f}x"
        )


def main() -> int:
    """Run every variant, print the table and save it as JSON."""
    parser = sst2_parser(__doc__)
    parser.add_argument("--skip", default="", help="comma-separated variants to leave out")
    parser.add_argument("--trainer-bf16", action="store_true", help="also run the Trainer at its best with bf16=True")
    args = parser.parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    import torch

    model_path = setup(args.threads)
    bf16 = "nlp_bf16" not in args.skip.split(",") or args.trainer_bf16
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16) if bf16 else None}
    texts, _ = read_sst2(SST2 / "train.tsv", args.train_rows)
    dev_texts, _ = read_sst2(SST2 / "dev.tsv")
    counts = training_flops(model_path, texts)
    with tempfile.TemporaryDirectory() as tmp:
        results = run_variants(model_path, args, Path(tmp), counts["flops"], rates)
        if "nlp_fp32" in results and "nlp_bf16" in results:
            results["fp32_vs_bf16"] = compare_precisions(results, dev_texts)
        if "nlp_fp32" in results:
            results["predict"] = compare_predict(results["nlp_fp32"]["run_dir"], dev_texts, args.batch_size)
    report = {
        **report_header(args.threads),
        "matmul_gflops": rates,
        "repeats": args.repeats,
        "training_tokens": counts["tokens"],
        "non_embedding_parameters": counts["non_embedding"],
        "results": results,
    }
    print_report(args, rates, results)
    write_result(f"speed_{args.train_rows}", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
