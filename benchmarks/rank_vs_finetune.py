"""Does `nlp-transfer rank` order candidates as fine-tuning them would? Weighted Kendall tau per estimator.

Offline there is one pretrained model, so the candidates are its variants: depth 2, 3, 4 and 6, each with
cls and mean pooling (NER: depths only), and the same architecture at random weights as a control. On each
dataset the script ranks the candidates (one sample of the training rows, frozen features), then fine-tunes
every candidate with the same settings (strategy full, `transfer.depth`, `transfer.pooling`; the control from
random weights) and scores it on validation data (the published validation split, or one carved from train;
no test split is read). It reports, per estimator, the weighted Kendall tau (scipy's defaults: hyperbolic weights,
top ranks count most) between its scores and the fine-tuned metric, whether the control came last, and the
cost of ranking against the cost of fine-tuning every candidate. It also reports each depth's fine-tuned
metric, training speed and prediction speed, so depth can be traded for speed.

    python benchmarks/rank_vs_finetune.py --threads 2
    python benchmarks/rank_vs_finetune.py --datasets sst2,trec --train-rows 1000 --threads 2   # a quick look
    python benchmarks/rank_vs_finetune.py --report benchmarks/results/rank_vs_finetune.json  # the tables again
    python benchmarks/rank_vs_finetune.py --depth-speed --threads 2   # each depth's prediction speed, machine idle
    python benchmarks/rank_vs_finetune.py --rerank benchmarks/results/rank_vs_finetune.json --sample 500   # smaller sample
    python benchmarks/rank_vs_finetune.py --rerank benchmarks/results/rank_vs_finetune.json --score-layers mean

``--score-layers mean`` ranks each candidate on the mean of its layers' outputs (``@depth=K+layer=mean``, as Flair's
TransformerRanker averages layers) while still fine-tuning the candidate itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATASETS, DEFAULT_MODEL, MAX_LENGTH, read_trec, report_header, setup, write_result

DEPTHS = (2, 3, 4, 6)
CONTROL = "@init=random"


def trec_as_tsv(folder: Path) -> Path:
    """TREC's ``COARSE:fine question`` lines (Latin-1) as a ``text<TAB>label`` file with the coarse label."""
    questions, labels = read_trec(DATASETS / "trec" / "train.txt")
    rows = ["text\tlabel", *(f"{question}\t{label}" for question, label in zip(questions, labels, strict=True))]
    path = folder / "trec-train.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def dataset_overrides(name: str, folder: Path) -> dict[str, Any]:
    """The data settings of one benchmark dataset; validation is never the test split."""
    amazon = {"data.text_column": "sentence", "data.validation_split": 0.15}
    table: dict[str, dict[str, Any]] = {
        "sst2": {"data.train_file": DATASETS / "sst2/train.tsv", "data.text_column": "sentence", "data.validation_split": 0.05},
        "emotion": {
            "data.train_file": DATASETS / "emotion/train.txt",
            "data.validation_file": DATASETS / "emotion/val.txt",
            "data.format": "csv",
            "data.delimiter": ";",
            "data.header": "[text, label]",
        },
        "trec": {"data.train_file": trec_as_tsv(folder), "data.validation_split": 0.1},
        "books": {"data.train_file": DATASETS / "amazon_multidomain/books/train.tsv", **amazon},
        "kitchen": {"data.train_file": DATASETS / "amazon_multidomain/kitchen/train.tsv", **amazon},
        "dvd": {"data.train_file": DATASETS / "amazon_multidomain/dvd/train.tsv", **amazon},
        "electronics": {"data.train_file": DATASETS / "amazon_multidomain/electronics/train.tsv", **amazon},
        "conll": {
            "task": "ner",
            "data.train_file": DATASETS / "conll2003/train.txt",
            "data.validation_file": DATASETS / "conll2003/valid.txt",
            "data.format": "conll",
        },
    }
    return table[name]


def candidate_specs(task: str) -> list[str]:
    """The variants ranked and fine-tuned: depths x poolings (depths only for NER), then the random control."""
    poolings = ("cls",) if task == "ner" else ("cls", "mean")
    return [f"@depth={d}" + ("+pooling=mean" if p == "mean" else "") for d in DEPTHS for p in poolings] + [CONTROL]


def scored_spec(spec: str, layers: str) -> str:
    """The variant a candidate is ranked as: itself, or with ``layers=mean`` its features averaged over its layers.

    Fine-tuning always trains the candidate itself; only the frozen features the estimators see change.
    """
    if layers == "last" or "layer=" in spec:
        return spec
    if "@" not in spec:
        return spec + "@layer=mean"
    return spec + ("" if spec.endswith("@") else "+") + "layer=mean"


def base_config(name: str, args: argparse.Namespace, folder: Path) -> Any:
    """The run config shared by ranking and fine-tuning on dataset ``name``."""
    from nlp_transfer.config import load_config

    values = {
        "model": DEFAULT_MODEL,
        "output_dir": str(folder / name / "run"),
        "seed": args.seed,
        "data.max_train_samples": args.train_rows,
        "data.max_eval_samples": args.eval_rows,
        "training.batch_size": 32,
        "training.learning_rate": args.learning_rate,
        "training.max_length": MAX_LENGTH,
        "training.torch_threads": args.threads,
        **dataset_overrides(name, folder),
    }
    return load_config(None, [f"{k}={v}" for k, v in values.items()])


def fine_tune(config: Any, candidate: Any, epochs: int, folder: Path) -> dict[str, Any]:
    """Fine-tune one candidate; its validation metric, training time and prediction speed."""
    import copy

    from nlp_transfer.inference import predict
    from nlp_transfer.pipeline import run_training

    run_config = copy.deepcopy(config)
    run_config.output_dir = str(folder)
    run_config.training.epochs = epochs
    run_config.transfer.depth = candidate.depth
    run_config.transfer.pooling = candidate.pooling
    result = run_training(run_config, overwrite=True, from_scratch=candidate.init == "random")
    metric = "f1" if config.task == "ner" else "accuracy"
    row = {"metric": result.metrics["validation"][metric], "train_seconds": result.info["train_seconds"]}
    if config.task != "ner":
        texts = [f"this is a sentence of moderate length number {i} for timing the predictions" for i in range(512)]
        started = time.perf_counter()
        predict(folder, texts, batch_size=64)
        row["predict_per_second"] = round(len(texts) / (time.perf_counter() - started), 1)
    shutil.rmtree(folder, ignore_errors=True)
    return row


def weighted_tau(scores: list[float], truth: list[float]) -> float:
    """scipy's weighted Kendall tau with its defaults (hyperbolic weights, averaged over ranking by either side).

    These are the settings the LogME paper and later transferability studies report.
    """
    from scipy.stats import weightedtau

    return float(weightedtau(scores, truth).statistic)


def agreement(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per estimator: weighted tau against the fine-tuned metric, and whether the random control scored lowest."""
    from nlp_transfer.rank import ESTIMATORS

    names = list(result["candidates"])
    truth = [result["candidates"][n]["metric"] for n in names]
    found = {}
    for estimator in ESTIMATORS:
        scores = [result["candidates"][n]["scores"][estimator] for n in names]
        found[estimator] = {
            "tau": round(weighted_tau(scores, truth), 4),
            "control_last": scores[names.index(CONTROL)] == min(scores),
        }
    return found


def study_dataset(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Rank, then fine-tune, every candidate of one dataset; the per-estimator agreement."""
    from nlp_transfer.rank import parse_candidates, run_ranking

    config = base_config(name, args, folder)
    specs = candidate_specs(config.task)
    candidates = parse_candidates(",".join(specs), default_model=config.model)
    ranked = parse_candidates(",".join(scored_spec(s, args.score_layers) for s in specs), default_model=config.model)
    started = time.perf_counter()
    rows, recommended, _ = run_ranking(config, ranked, sample_size=args.sample, output_dir=folder / name / "rank")
    rank_seconds = time.perf_counter() - started
    epochs = args.epochs
    tuned = {}
    for spec, candidate in zip(specs, candidates, strict=True):
        tuned[spec] = fine_tune(config, candidate, epochs, folder / name / "ft")
        print(f"[{name}] fine-tuned {spec}: {tuned[spec]}", flush=True)
    result = {
        "task": config.task,
        "epochs": epochs,
        "candidates": {
            s: {"scores": r.scores, "encode_seconds": r.encode_seconds, **tuned[s]} for s, r in zip(specs, rows, strict=True)
        },
        "recommended": recommended,
        "best_fine_tuned": max(specs, key=lambda s: tuned[s]["metric"]),
        "rank_seconds": round(rank_seconds, 1),
        "fine_tune_seconds": round(sum(t["train_seconds"] for t in tuned.values()), 1),
    }
    return {**result, "estimators": agreement(result)}


def estimator_seconds(results: dict[str, dict[str, Any]], estimator: str) -> float:
    """What ranking with one estimator costs: encoding every candidate plus that estimator's own time."""
    return sum(
        row["encode_seconds"] + row["scores"][f"{estimator}_seconds"]
        for r in results.values()
        for row in r["candidates"].values()
    )


def rerank(saved: dict[str, dict[str, Any]], args: argparse.Namespace, folder: Path) -> dict[str, dict[str, Any]]:
    """Rank the saved datasets' candidates again (another ``--sample`` or ``--score-layers``), keeping their fine-tuning."""
    from nlp_transfer.rank import parse_candidates, run_ranking

    results = {}
    for name, old in saved.items():
        config = base_config(name, args, folder)
        specs = list(old["candidates"])
        candidates = parse_candidates(",".join(scored_spec(s, args.score_layers) for s in specs), default_model=config.model)
        started = time.perf_counter()
        rows, recommended, _ = run_ranking(config, candidates, sample_size=args.sample, output_dir=folder / name / "rank")
        fresh = {
            s: {**old["candidates"][s], "scores": r.scores, "encode_seconds": r.encode_seconds}
            for s, r in zip(specs, rows, strict=True)
        }
        result = {**old, "candidates": fresh, "recommended": recommended, "rank_seconds": round(time.perf_counter() - started, 1)}
        results[name] = {**result, "estimators": agreement(result)}
    return results


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: tau per estimator and dataset, the mean, how often the control came last, and the cost."""
    from nlp_transfer.rank import ESTIMATORS

    names = list(results)
    tune_cost = sum(r["fine_tune_seconds"] for r in results.values())
    head = "| estimator | " + " | ".join(names) + " | mean tau | control last | cost (share of fine-tuning) |"
    lines = [head, "|---|" + "---|" * (len(names) + 3)]
    for estimator in ESTIMATORS:
        taus = [results[n]["estimators"][estimator]["tau"] for n in names]
        last = sum(results[n]["estimators"][estimator]["control_last"] for n in names)
        cost = estimator_seconds(results, estimator)
        lines.append(
            f"| {estimator} | "
            + " | ".join(f"{t:.3f}" for t in taus)
            + f" | {statistics.mean(taus):.3f} | {last}/{len(names)} | {cost:.0f} s ({cost / tune_cost:.1%}) |"
        )
    rank_cost = sum(r["rank_seconds"] for r in results.values())
    lines.append(
        f"\nfine-tuning every candidate: {tune_cost:.0f} s of training; the whole ranking (loading, encoding, "
        f"all four estimators): {rank_cost:.0f} s ({rank_cost / tune_cost:.1%})"
    )
    return "\n".join(lines)


def depth_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: each candidate's fine-tuned validation metric per dataset, with its training time."""
    names = list(results)
    specs = list(dict.fromkeys(spec for result in results.values() for spec in result["candidates"]))
    lines = ["| candidate | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for spec in specs:
        cells = []
        for n in names:
            row = results[n]["candidates"].get(spec)
            cells.append("" if row is None else f"{row['metric']:.3f} ({row['train_seconds']:.0f} s)")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def depth_speed(threads: int, repeats: int = 5) -> str:
    """Prediction speed of each depth on the 872 SST-2 dev sentences (batch 32), median of ``repeats``; a table.

    The depths take turns within each repeat (interleaved), so a drift of the machine's speed reaches them all alike.
    """
    import torch

    from nlp_transfer.inference import text_logits
    from nlp_transfer.tasks import build_classification_task
    from nlp_transfer.transfer import keep_bottom_layers

    torch.set_num_threads(threads)
    texts = [line.rsplit("\t", 1)[0].strip() for line in (DATASETS / "sst2/dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    task = build_classification_task(model=DEFAULT_MODEL, labels=["negative", "positive"], max_length=MAX_LENGTH)
    models = {depth: keep_bottom_layers(task.build_model(), depth).eval() for depth in sorted(DEPTHS, reverse=True)}
    times: dict[int, list[float]] = {depth: [] for depth in models}
    for model in models.values():
        text_logits(model, task, texts[:64], batch_size=32)  # warm-up
    for _ in range(repeats):
        for depth, model in models.items():
            started = time.perf_counter()
            text_logits(model, task, texts, batch_size=32)
            times[depth].append(time.perf_counter() - started)
    lines = [f"| depth | parameters | sentences/s (median of {repeats}) | against depth 6 |", "|---|---|---|---|"]
    rates = {depth: len(texts) / statistics.median(seconds) for depth, seconds in times.items()}
    for depth, model in models.items():
        parameters = sum(p.numel() for p in model.parameters())
        lines.append(f"| {depth} | {parameters:,} | {rates[depth]:.0f} | {rates[depth] / rates[max(DEPTHS)]:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sst2,emotion,trec,books,kitchen,conll")
    parser.add_argument("--train-rows", type=int, default=4000, help="training rows (sentences for CoNLL) per dataset")
    parser.add_argument("--eval-rows", type=int, default=1000, help="validation rows that score the fine-tuned candidates")
    parser.add_argument("--sample", type=int, default=2000, help="training rows each candidate encodes for ranking")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs of every candidate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--report", nargs="+", help="print the tables of saved result JSONs (datasets merged, agreement recomputed) and stop"
    )
    parser.add_argument(
        "--rerank", nargs="+", help="saved result JSONs: rank their candidates again with --sample, reuse their fine-tuning"
    )
    parser.add_argument("--depth-speed", action="store_true", help="only measure each depth's prediction speed and stop")
    parser.add_argument(
        "--score-layers",
        choices=("last", "mean"),
        default="last",
        help="features the estimators score: each candidate's last layer, or the mean of its layers (@...+layer=mean)",
    )
    args = parser.parse_args()
    if args.depth_speed:
        setup(args.threads)
        print(depth_speed(args.threads))
        return 0
    if args.rerank:
        setup(args.threads)
        saved = {}
        for path in args.rerank:
            saved.update(json.loads(Path(path).read_text(encoding="utf-8"))["datasets"])
        with tempfile.TemporaryDirectory(prefix="rank-bench-") as tmp:
            results = rerank(saved, args, Path(tmp))
        write_result(
            f"rank_vs_finetune_{'-'.join(sorted(saved))}_sample{args.sample}_{args.score_layers}",
            {**report_header(args.threads), "settings": vars(args), "datasets": results},
        )
        print(summary_table(results))
        return 0
    if args.report:
        results = {}
        for path in args.report:
            results.update(json.loads(Path(path).read_text(encoding="utf-8"))["datasets"])
        results = {name: {**r, "estimators": agreement(r)} for name, r in results.items()}
        print(summary_table(results) + "\n\n" + depth_table(results))
        return 0
    if not (DATASETS / "sst2" / "train.tsv").is_file():
        print(f"error: {DATASETS} is missing; the benchmark reads the datasets from ../shared/datasets.", file=sys.stderr)
        return 2
    setup(args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="rank-bench-") as tmp:
        for name in args.datasets.split(","):
            results[name] = study_dataset(name, args, Path(tmp))
            write_result("rank_vs_finetune", {**report_header(args.threads), "settings": vars(args), "datasets": results})
    print("\n" + summary_table(results) + "\n\n" + depth_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
