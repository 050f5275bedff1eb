"""A new domain: self-training and continued pretraining across Amazon product domains (issue #17).

For each SOURCE:TARGET pair and seed, up to six runs of the same recipe settings (the default model, full
fine-tuning; ``--arms`` picks which):

- ``source_only``: train on SOURCE/train.tsv (10 % held out, seeded, picks the best epoch), test on TARGET/dev.tsv;
- ``self_training``: the same, plus ``data.unlabeled_file=TARGET/train.tsv`` (its texts only; labels are never read)
  and one round of pseudo-labels (``self_training.*`` at their defaults);
- ``tapt``: ``source_only`` from the model adapted to TARGET's texts (``nlp-transfer adapt`` with
  recipes/configs/adapt/minilm_tapt.yaml, ``data.train_file=TARGET/train.tsv``, the run's seed, ``--adapt-epochs``);
  the adapted model is made once per (target, seed) and kept under ``adapted/`` in the results folder (an
  interrupted adaptation resumes); with ``--adapt-head-epochs H`` the new masked-LM head first trains alone for H
  epochs (``strategy=frozen``) and the adaptation starts from it (its runs are kept and reported apart);
- ``tapt_self_training``: both;
- ``in_domain``: train on TARGET/train.tsv, test on TARGET/dev.tsv (the upper bound);
- ``in_domain_tapt``: ``in_domain`` from the adapted model (continued pretraining on the task's own texts, then
  fine-tuning on their labels).

``in_domain`` and ``in_domain_tapt`` never read the source, so one run serves every pair into a target; a
``source_only`` model does not depend on the target, so it is trained once per source and scored on the three
other domains. Every run is scored on TARGET/dev.tsv (the test) and, transductive, on all 2,000 TARGET reviews
(train.tsv and dev.tsv; not for the in-domain arms, which trained on train.tsv's labels).

No setting is chosen on the target: the settings are the SST-2 recipe's and the adapt recipe's. Results are appended
to ``benchmarks/results/self_training_runs.jsonl`` as each run ends, so an interrupted benchmark resumes where it
stopped; ``--report`` prints the table (mean and spread over seeds, and the share of the source-to-in-domain gap
that each adaptation closes).

    python benchmarks/self_training.py --pairs books:kitchen,electronics:dvd --seeds 0,1 --threads 2
    python benchmarks/self_training.py --report
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import AMAZON, REPO, append_row, dataset_present, read_rows, results_folder

RUNS_FILE = "self_training_runs.jsonl"
ADAPT_FILE = "self_training_adapted.jsonl"  # one row per adapted model: held-out masked-LM metrics and time
ARMS = ("source_only", "self_training", "tapt", "tapt_self_training", "in_domain", "in_domain_tapt")
IN_DOMAIN = ("in_domain", "in_domain_tapt")
ADAPTED = ("self_training", "tapt", "tapt_self_training")  # the arms whose share of the gap the report gives
DOMAINS = ("books", "dvd", "electronics", "kitchen")
TAPT_CONFIG = REPO / "recipes/configs/adapt/minilm_tapt.yaml"


def overrides(
    arm: str, source: str, target: str, seed: int, output_dir: Path, args: argparse.Namespace, model: Path | None
) -> list[str]:
    """The recipe overrides of one run; ``model`` replaces the recipe's (an adapted model) when given."""
    train = AMAZON / (target if arm in IN_DOMAIN else source) / "train.tsv"
    values: dict[str, Any] = {
        "output_dir": output_dir,
        "seed": seed,
        "data.train_file": train,
        "data.validation_file": None,
        "data.validation_split": 0.1,
        "data.test_file": AMAZON / target / "dev.tsv",
        "training.epochs": args.epochs,
        "training.max_length": args.max_length,
        "training.eval_strategy": "epoch",
        "training.torch_threads": args.threads,
    }
    if arm in ("self_training", "tapt_self_training"):
        values["data.unlabeled_file"] = AMAZON / target / "train.tsv"
    if model is not None:
        values["model"] = model
    return [f"{key}={'null' if value is None else value}" for key, value in values.items()]


def adapted_model(target: str, seed: int, args: argparse.Namespace) -> Path:
    """The default model adapted to ``target``'s review texts (masked LM), made on first use and kept.

    With ``--adapt-head-epochs H`` the new masked-LM head is first trained alone for H epochs (``strategy=frozen``),
    and the whole-model adaptation starts from that folder.
    """
    name = f"{target}-seed{seed}" + (f"-head{args.adapt_head_epochs}" if args.adapt_head_epochs else "")
    start = None
    if args.adapt_head_epochs:
        start = adapt_once(results_folder() / "adapted" / f"{name}-headonly", target, seed, args, head_only=True)
    return adapt_once(results_folder() / "adapted" / f"{name}-epochs{args.adapt_epochs}", target, seed, args, start=start)


def adapt_once(
    folder: Path, target: str, seed: int, args: argparse.Namespace, *, head_only: bool = False, start: Path | None = None
) -> Path:
    """One ``nlp-transfer adapt`` run into ``folder`` (kept, resumed if interrupted), from ``start`` when given."""
    from nlp_transfer.adapt.run import run_adaptation
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import METRICS_FILE

    epochs = args.adapt_head_epochs if head_only else args.adapt_epochs
    if (folder / METRICS_FILE).is_file():
        return folder
    values = {
        "output_dir": folder,
        "seed": seed,
        "data.train_file": AMAZON / target / "train.tsv",
        "training.epochs": epochs,
        "training.torch_threads": args.threads,
        **({"strategy": "frozen"} if head_only else {}),
        **({"model": start} if start else {}),
    }
    config = load_config(TAPT_CONFIG, [f"{key}={value}" for key, value in values.items()])
    started = time.perf_counter()
    result = run_adaptation(config, resume=folder.is_dir())
    arm = "adapt_head_only" if head_only else "adapt" + ("_after_head" if start else "")
    row = {"target": target, "seed": seed, "arm": arm, "epochs": epochs, "threads": args.threads}
    row |= {"seconds": round(time.perf_counter() - started, 1), "heldout_before": result.before, "heldout_after": result.after}
    append_row(results_folder() / ADAPT_FILE, row)
    return folder


def run_one(arm: str, source: str, target: str, seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train one arm; its result rows: one for the pair, or for ``source_only`` one per target domain.

    A source-only model does not depend on the target, so it is trained once and scored on every other domain.
    """
    from nlp_transfer.config import load_config
    from nlp_transfer.inference import load_run
    from nlp_transfer.pipeline import run_training

    targets = [d for d in DOMAINS if d != source] if arm == "source_only" else [target]
    model = adapted_model(target, seed, args) if "tapt" in arm else None
    with tempfile.TemporaryDirectory() as work:
        values = overrides(arm, source, target, seed, Path(work) / "run", args, model)
        config = load_config(REPO / "recipes/configs/sentiment/sst2_full.yaml", values)
        started = time.perf_counter()
        result = run_training(config)
        seconds = time.perf_counter() - started
        trained = load_run(result.output_dir)
        scores = {name: target_scores(*trained, config.data, name, arm not in IN_DOMAIN) for name in targets}
    rows = []
    for name in targets:
        row = {"source": source, "target": name, "seed": seed, "arm": arm, "seconds": round(seconds, 1), **scores[name]}
        row["validation_accuracy"] = result.metrics["validation"]["accuracy"]
        rows.append(row)
    rounds = result.info.get("self_training", {}).get("rounds", [])
    if rounds:
        rows[0]["pseudo_labels"] = rounds[-1].get("pseudo_labels_per_class")
        rows[0]["round_0_validation_accuracy"] = rounds[0]["validation"].get("accuracy")
    return rows


def target_scores(model: Any, task: Any, data: Any, target: str, transductive: bool) -> dict[str, float | None]:
    """Accuracy on ``target``'s dev.tsv (the test) and, if ``transductive``, on all its reviews (train.tsv and dev.tsv).

    Not transductive for the in-domain arms: they trained on train.tsv's labels.
    """
    import numpy as np

    from nlp_transfer.inference import labelled_file_logits

    correct = []
    for split in ("dev", "train") if transductive else ("dev",):
        logits, labels = labelled_file_logits(model, task, str(AMAZON / target / f"{split}.tsv"), data)
        correct.append(logits.argmax(-1) == labels)
    return {
        "test_accuracy": float(correct[0].mean()),
        "transductive_accuracy": float(np.concatenate(correct).mean()) if transductive else None,
    }


def run_key(arm: str, source: str, target: str, seed: int, epochs: int | None) -> tuple:
    """What makes two runs the same (the in-domain arms never read the source)."""
    return (arm, None if arm in IN_DOMAIN else source, target, seed, epochs)


def comparable(row: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether a stored run was made as ``args`` would make it: a continued-pretraining arm with the same head warm-up."""
    return "tapt" not in row["arm"] or row.get("adapt_head_epochs", 0) == args.adapt_head_epochs


def run_benchmark(args: argparse.Namespace) -> int:
    """Run every pending (pair, seed, arm), appending each result as it ends."""
    if not dataset_present(AMAZON / "books", "train.tsv", "amazon_multidomain"):
        return 2
    path = results_folder() / RUNS_FILE
    done = {
        run_key(r["arm"], r["source"], r["target"], r["seed"], r.get("epochs")) for r in read_rows(path) if comparable(r, args)
    }
    arms = [arm for arm in ARMS if arm in args.arms.split(",")]
    for pair in args.pairs.split(","):
        source, target = pair.split(":")
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in arms:
                key = run_key(arm, source, target, seed, args.epochs)
                if key in done:
                    continue
                done.add(key)
                for row in run_one(arm, source, target, seed, args):
                    row |= {"epochs": args.epochs, "threads": args.threads}
                    if "tapt" in arm:
                        row["adapt_epochs"] = args.adapt_epochs
                        row["adapt_head_epochs"] = args.adapt_head_epochs
                    append_row(path, row)
                    done.add(run_key(arm, source, row["target"], seed, args.epochs))
    return 0


def arm_cells(rows: list[dict[str, Any]], source: str, target: str, metric: str) -> tuple[list[str], dict[str, float]]:
    """Per arm, "mean ± std (runs)" of ``metric`` (%) over seeds for one pair, and the means."""
    cells, means = [], {}
    for arm in ARMS:
        wanted = run_key(arm, source, target, 0, 0)
        found = [r for r in rows if run_key(r["arm"], r["source"], r["target"], 0, 0) == wanted]
        values = [100 * r[metric] for r in found if r.get(metric) is not None]
        means[arm] = statistics.mean(values) if values else float("nan")
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        cells.append(f"{means[arm]:.1f} ± {spread:.1f} ({len(values)})" if values else "-")
    return cells, means


def report(args: argparse.Namespace) -> int:
    """Print the tables: accuracy per pair and arm on the target's dev.tsv and on all its reviews (transductive).

    Only runs of ``--epochs`` epochs (and continued-pretraining runs of ``--adapt-head-epochs``) are in the tables.
    """
    every = read_rows(results_folder() / RUNS_FILE)
    rows = [r for r in every if r.get("epochs", args.epochs) == args.epochs and comparable(r, args)]
    if len(rows) < len(every):
        print(
            f"{len(every) - len(rows)} runs of another --epochs or --adapt-head-epochs left out "
            f"(the tables are for --epochs {args.epochs} --adapt-head-epochs {args.adapt_head_epochs})"
        )
    for metric, title in (("test_accuracy", "target dev.tsv"), ("transductive_accuracy", "all 2,000 target reviews")):
        print(f"\n{title}: accuracy (%), mean ± std over seeds (runs)\n")
        metric_table(rows, metric)
    for row in read_rows(results_folder() / ADAPT_FILE):
        before, after = row["heldout_before"], row["heldout_after"]
        print(
            f"{row['arm']}: {row['target']} (seed {row['seed']}, {row['epochs']} epochs, {row['seconds']:.0f} s): held-out "
            f"masked-LM loss {before['loss']:.3f} -> {after['loss']:.3f}, accuracy {before['masked_accuracy']:.3f} -> "
            f"{after['masked_accuracy']:.3f}"
        )
    return 0


def metric_table(rows: list[dict[str, Any]], metric: str) -> None:
    """One table of ``metric`` per pair and arm, the share of the gap each adaptation closes, and their means."""
    pairs = sorted({(r["source"], r["target"]) for r in rows if r["arm"] not in IN_DOMAIN})
    print("| source -> target | " + " | ".join(ARMS) + " | " + " | ".join(f"gap closed: {a}" for a in ADAPTED) + " |")
    print("|---" * (1 + len(ARMS) + len(ADAPTED)) + "|")
    closed: dict[str, list[float]] = {arm: [] for arm in ADAPTED}  # per pair: share (%) of the gap closed
    gains: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ADAPTED}  # (arm - source, in-domain - source)
    for source, target in pairs:
        cells, means = arm_cells(rows, source, target, metric)
        gap = means["in_domain"] - means["source_only"]
        shares = []
        for arm in ADAPTED:
            gain = means[arm] - means["source_only"]
            shares.append(100 * gain / gap if gap > 0 else float("nan"))  # nan without a positive gap (or a run)
            closed[arm].append(shares[-1])
            if gain == gain and gap == gap:
                gains[arm].append((gain, gap))
        print(
            f"| {source} -> {target} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(f"{v:.0f} %" if v == v else "-" for v in shares)
            + " |"
        )
    for arm, shares in closed.items():
        known = [share for share in shares if share == share]
        if known:
            print(f"{arm}: mean share of the gap closed {statistics.mean(known):.0f} % over {len(known)} pairs")
        if gains[arm]:  # a pair with a gap near zero makes its share explode: the pooled figure does not
            gain, gap = (statistics.mean(values) for values in zip(*gains[arm], strict=True))
            print(
                f"{arm}: mean gain {gain:+.2f} points against a mean gap of {gap:.2f} over {len(gains[arm])} pairs"
                + (f" ({100 * gain / gap:.0f} % of it)" if gap > 0 else "")
            )


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", default="books:kitchen,electronics:dvd", help="SOURCE:TARGET,... of books, dvd, electronics, kitchen"
    )
    parser.add_argument("--seeds", default="0,1", help="run seeds")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"which runs, of {', '.join(ARMS)} (default all)")
    parser.add_argument("--adapt-epochs", type=int, default=3, help="masked-LM epochs of the adapted model (default 3)")
    parser.add_argument(
        "--adapt-head-epochs", type=int, default=0, help="first train the new masked-LM head alone this many epochs (default 0)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every run (default 2)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per review (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--report", action="store_true", help="print the table of the results so far")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    raise SystemExit(report(arguments) if arguments.report else run_benchmark(arguments))
