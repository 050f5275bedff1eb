"""Which head should a few-shot encoder get? Heads on the same contrastive encoder, scored on spare training rows.

    python benchmarks/head_fit.py --datasets kitchen,sst2,trec,emotion --seeds 0,1 --threads 1

For each dataset and seed, the group of benchmarks/few_shot.py (8 examples per class, its validation rows) trains
one ``strategy=contrastive`` run of the ``--arm`` (default ``cosine:20``) with the loop's head (``head_fit=steps``,
few_shot.py's head settings) and keeps its run folder. On that one encoder, several heads are then fitted to the
training rows and scored on up to ``--design-rows`` other training rows of the dataset (seeded sample, outside the
train and validation samples): **never the test split**, so the choice this informs (the head
``transfer.head_fit=logistic`` fits) is not made on test. Heads:

- ``loop``: the run's own head (pooler + classifier trained by the loop, best evaluation on validation);
- ``logistic_mean``: scikit-learn ``LogisticRegression(C)`` on the mean-pooled vectors, what
  ``transfer.head_fit=logistic`` solves;
- ``logistic_normalized``: the same on unit-length vectors (what SetFit's head reads: the body normalises);
- ``logistic_pretrained_pooler``: the same on the pretrained pooler's outputs (dense + tanh kept, the classifier alone
  fitted).

Each at ``--cs`` values of ``C``. Caveat: spare training rows are not always drawn like the test split (SST-2's train
holds phrases, its dev whole sentences; TREC-6's test questions come from another TREC year), so a head that wins
here can lose on test: few_shot.py's ``:logistic`` arms measure that, chosen on validation as every arm. Rows go to ``head_fit_runs.jsonl`` in the results folder; the summary (mean accuracy
per head less the loop head's, and how many runs each head beats it on) to stdout and ``head_fit.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import few_shot
from common import append_row, read_rows, report_header, results_folder, setup, write_result

RUNS_FILE = "head_fit_runs.jsonl"


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="kitchen,sst2,trec,emotion")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--arm", default="cosine:20", help="the contrastive arm of few_shot.py that trains the encoder")
    parser.add_argument("--size", type=int, default=8, help="training examples per class")
    parser.add_argument("--design-rows", type=int, default=1000)
    parser.add_argument("--cs", default="0.1,1,10", help="C values of the logistic heads")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=None, help="folder for the run folders (default: a temporary one)")
    return parser.parse_args()


def train_encoder(corpus: few_shot.Corpus, dataset: str, seed: int, folder: Path, args: argparse.Namespace) -> Path:
    """One contrastive run (the loop's head) on few_shot.py's group for (size, seed); its run folder."""
    from nlp_transfer import pipeline
    from nlp_transfer.config import load_config

    folder.mkdir(parents=True, exist_ok=True)
    group = few_shot.write_group(corpus, args.size, seed, 0, folder) | {"seed": seed, "names": corpus.names}
    options = few_shot.parse_args(["--contrastive-grid", args.arm])  # few_shot.py's defaults for every other setting
    settings = few_shot.method_arms("contrastive", options)[args.arm]
    overrides = few_shot.recipe_overrides("contrastive", settings, group, args.threads)
    run_dir = folder / "run"
    config = load_config(None, [f"output_dir={run_dir}", *(f"{key}={value}" for key, value in overrides.items())])
    pipeline.run_training(config, overwrite=True)
    return run_dir


def mean_vectors(run_dir: Path, texts: list[str]) -> Any:
    """The run's encoder, mean-pooled over each text's tokens (256 at most, as few_shot.py trains)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(run_dir), AutoModel.from_pretrained(run_dir).eval()
    vectors = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            batch = tokenizer(texts[start : start + 64], truncation=True, max_length=256, padding=True, return_tensors="pt")
            mask = batch["attention_mask"].unsqueeze(-1).float()
            vectors.append((model(**batch).last_hidden_state * mask).sum(1) / mask.sum(1))
    return torch.cat(vectors)


def head_scores(run_dir: Path, base: str, x: dict[str, Any], y: dict[str, Any], cs: list[float]) -> dict[str, float]:
    """Accuracy on the design rows of the loop's head and of each logistic head at each C."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel, AutoModelForSequenceClassification

    trained = AutoModelForSequenceClassification.from_pretrained(run_dir).eval()
    pretrained_pooler = AutoModel.from_pretrained(base).eval().pooler
    with torch.no_grad():
        loop_logits = trained.classifier(trained.bert.pooler.activation(trained.bert.pooler.dense(x["design"])))
        views = {
            "logistic_mean": lambda v: v,
            "logistic_normalized": lambda v: torch.nn.functional.normalize(v, dim=-1),
            "logistic_pretrained_pooler": lambda v: pretrained_pooler.activation(pretrained_pooler.dense(v)),
        }
        scores = {"loop": float((loop_logits.argmax(-1).numpy() == y["design"]).mean())}
        for name, view in views.items():
            for c in cs:
                head = LogisticRegression(C=c, max_iter=10_000).fit(view(x["train"]).numpy(), y["train"])
                scores[f"{name}_C{c:g}"] = float(head.score(view(x["design"]).numpy(), y["design"]))
    return scores


def one_run(corpus: few_shot.Corpus, dataset: str, seed: int, work: Path, base: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train the encoder of (dataset, seed), fit every head, score them on the design rows."""
    import numpy as np

    run_dir = train_encoder(corpus, dataset, seed, work / f"{dataset}-{seed}", args)
    ids = corpus.train_ids()
    train = few_shot.sample_rows(ids, args.size, seed)
    validation = few_shot.validation_rows(ids, args.size, 10_000 + seed, train)
    spare = sorted(set(range(len(ids))) - set(train) - set(validation))
    rows = {"train": train, "design": random.Random(99).sample(spare, min(args.design_rows, len(spare)))}
    x = {split: mean_vectors(run_dir, [corpus.train_texts[i] for i in chosen]) for split, chosen in rows.items()}
    y = {split: np.array([ids[i] for i in chosen]) for split, chosen in rows.items()}
    cs = [float(c) for c in args.cs.split(",")]
    return {"dataset": dataset, "seed": seed, "arm": args.arm, "size": args.size, "design_rows": len(rows["design"])} | {
        "accuracy": head_scores(run_dir, base, x, y, cs)
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per head: mean accuracy less the loop head's (points), and in how many runs it beats / ties / trails it."""
    heads = [name for name in rows[0]["accuracy"] if name != "loop"]
    summary = {}
    for head in heads:
        gains = [100 * (row["accuracy"][head] - row["accuracy"]["loop"]) for row in rows]
        summary[head] = {
            "mean_gain_points": round(statistics.mean(gains), 2),
            "better": sum(g > 0 for g in gains),
            "equal": sum(g == 0 for g in gains),
            "worse": sum(g < 0 for g in gains),
        }
    return {"runs": len(rows), "loop_mean_accuracy": round(statistics.mean(r["accuracy"]["loop"] for r in rows), 4)} | {
        "heads": summary
    }


def main() -> int:
    """Run what the runs file lacks, then summarize every run of this arm and size."""
    import tempfile

    args = parse_args()
    base = setup(args.threads)  # the default model's folder: its pretrained pooler
    path = results_folder() / RUNS_FILE
    done = {(r["dataset"], r["seed"], r["arm"], r["size"]) for r in read_rows(path)}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        for dataset in args.datasets.split(","):
            corpus = few_shot.load_corpus(dataset)
            for seed in [int(s) for s in args.seeds.split(",")]:
                if (dataset, seed, args.arm, args.size) not in done:
                    append_row(path, one_run(corpus, dataset, seed, work, base, args))
    rows = [r for r in read_rows(path) if r["arm"] == args.arm and r["size"] == args.size]
    report = report_header(args.threads) | summarize(rows)
    print(json.dumps(report["heads"], indent=2))
    write_result("head_fit", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
