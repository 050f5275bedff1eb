"""Two CPU processes (DDP over gloo) through `accelerate launch`: same metrics as one process, no duplicates, no hang."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, synthetic_sentiment, write_csv

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "--main_process_port",
    "29517",
]
TIMEOUT = 240  # a hang in a collective fails the test instead of stalling CI


def run(command, out):
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "run_info.json").read_text()), done


def two_processes_and_one(common, tmp_path):
    """``common`` run by two processes of batch 8 and by one of batch 16 (the same effective batch): both results."""
    two = run([*LAUNCH, *common, "training.batch_size=8", f"output_dir={tmp_path / 'two'}"], tmp_path / "two")
    one = run([sys.executable, *common, "training.batch_size=16", f"output_dir={tmp_path / 'one'}"], tmp_path / "one")
    return two, one


def sentiment_recipe(model_dir, folder, train_rows, validation_rows):
    """The sentiment recipe on the tiny model and synthetic rows (validation doubles as test)."""
    train = write_csv(folder / "train.csv", synthetic_sentiment(train_rows, 1))
    val = write_csv(folder / "val.csv", synthetic_sentiment(validation_rows, 2))
    return [
        "recipes/sentiment.py",
        "recipes/configs/sentiment/minilm_full.yaml",
        f"model={model_dir}",
        f"data.train_file={train}",
        f"data.validation_file={val}",
        f"data.test_file={val}",
    ]


def test_two_processes_match_one(tiny_model_dir, tmp_path):
    common = [
        *sentiment_recipe(tiny_model_dir, tmp_path, 396, 101),  # neither divides by a batch: the short batches
        "training.epochs=3",
        "training.learning_rate=2e-3",
        "training.torch_threads=1",
    ]
    (two, two_info, launched), (one, one_info, _) = two_processes_and_one(common, tmp_path)
    assert two_info["num_processes"] == 2 and one_info["num_processes"] == 1
    assert two_info["global_steps"] == one_info["global_steps"] == 75
    for metrics in (one, two):
        matrix = metrics["validation"]["confusion_matrix"]["matrix"]
        assert sum(map(sum, matrix)) == 101  # every example scored exactly once
    # stated tolerance: 3 accuracy points between the two runs, both well above chance (0.5)
    assert abs(two["validation"]["accuracy"] - one["validation"]["accuracy"]) <= 0.03
    assert two["validation"]["accuracy"] >= 0.9
    assert launched.stdout.count("Results (saved in") == 1, "only the main process prints and writes"


def test_a_logistic_head_solved_under_two_processes_is_the_one_process_head(tiny_model_dir, tmp_path):
    """transfer.head_fit=logistic solves outside the loop: every process must end with the same weights as one process."""
    from safetensors.torch import load_file
    from torch.testing import assert_close

    common = [
        *sentiment_recipe(tiny_model_dir, tmp_path, 200, 61),
        "strategy=frozen",
        "transfer.pooling=mean",
        "transfer.head_fit=logistic",
        "training.torch_threads=1",
    ]
    two, _, _ = run([*LAUNCH, *common, f"output_dir={tmp_path / 'two'}"], tmp_path / "two")
    one, _, _ = run([sys.executable, *common, f"output_dir={tmp_path / 'one'}"], tmp_path / "one")
    weights = {name: load_file(str(tmp_path / name / "model.safetensors")) for name in ("one", "two")}
    for key in ("classifier.weight", "classifier.bias", "bert.pooler.dense.weight"):
        assert_close(weights["two"][key], weights["one"][key], rtol=1e-4, atol=1e-4)
    assert sum(map(sum, two["validation"]["confusion_matrix"]["matrix"])) == 61  # every row scored once
    assert two["validation"]["accuracy"] == one["validation"]["accuracy"] >= 0.9


def test_contrastive_with_its_third_phase_trains_under_two_processes(tiny_model_dir, tmp_path):
    """All three contrastive phases under DDP: pairs, the cached-feature head, then encoder and head together (whose
    keep-or-restore decision every process must take alike, or the processes would save different models or hang)."""
    common = [
        *sentiment_recipe(tiny_model_dir, tmp_path, 200, 61),
        "strategy=contrastive",
        "transfer.contrastive_pairs=4",
        "transfer.contrastive_learning_rate=1e-3",
        "transfer.contrastive_end_to_end_epochs=2",
        "transfer.contrastive_end_to_end_learning_rate=1e-3",
        "training.learning_rate=1e-5",  # a head that barely moves from its random start: phase 3 has room to beat it
        "training.epochs=1",
        "training.batch_size=8",
        "training.torch_threads=1",
    ]
    two, info, launched = run([*LAUNCH, *common, f"output_dir={tmp_path / 'two'}"], tmp_path / "two")
    phase = info["phases"]["end_to_end"]
    assert info["num_processes"] == 2 and phase["steps"] == 2 * 13  # 200 rows in 2 x 8 a step, two epochs
    assert phase["kept"] and phase["best_metric"] > phase["head_metric"] and launched.stdout.count("Results (saved in") == 1
    assert sum(map(sum, two["validation"]["confusion_matrix"]["matrix"])) == 61  # every row scored once
    assert two["validation"]["accuracy"] >= 0.8  # chance is 0.5


KILLED_WHILE_SAVING = """
import runpy, sys
import nlp_transfer.pipeline as pipeline

def killed(*args, **kwargs):
    raise SystemExit(3)  # as if the processes died while writing the run directory, after the last checkpoint

pipeline.save_outputs = killed
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_two_processes_resume_from_the_last_checkpoint_without_optimizer_state(tiny_model_dir, tmp_path):
    """Each process restores its own random states from the light last checkpoint; the resumed run is the same run."""
    common = [
        *sentiment_recipe(tiny_model_dir, tmp_path, 200, 61),
        "training.epochs=2",
        "training.learning_rate=2e-3",
        "training.batch_size=8",
        "training.torch_threads=1",
    ]
    full, _, _ = run([*LAUNCH, *common, f"output_dir={tmp_path / 'full'}"], tmp_path / "full")
    killer = tmp_path / "killed_while_saving.py"
    killer.write_text(KILLED_WHILE_SAVING, encoding="utf-8")
    part = tmp_path / "part"
    killed = subprocess.run(
        [*LAUNCH, str(killer), *common, f"output_dir={part}"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert killed.returncode != 0 and not (part / "model.safetensors").exists()
    last = sorted((part / "checkpoints").glob("step-*"))[-1]
    assert {"training_over", "random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in last.iterdir()}
    assert not list(last.glob("optimizer*"))
    resumed, _, _ = run([*LAUNCH, *common, f"output_dir={part}", "--resume"], part)
    assert resumed == full
    assert (part / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


def test_ner_under_two_processes_scores_every_entity_once(tiny_model_dir, tmp_path):
    out = tmp_path / "ner"
    metrics, info, _ = run(
        [
            *LAUNCH,
            "recipes/ner.py",
            "recipes/configs/ner/minilm_full.yaml",
            f"model={tiny_model_dir}",
            "training.epochs=1",
            "training.torch_threads=1",
            f"output_dir={out}",
        ],
        out,
    )
    assert info["num_processes"] == 2
    support = {kind: values["support"] for kind, values in metrics["validation"]["per_type"].items()}
    from nlp_transfer.data.conll import read_conll

    gold = read_conll(str(REPO / "data" / "ner" / "validation.conll")).sentences
    expected = {}
    for sentence in gold:
        for tag in sentence.tags:
            if tag.startswith("B-"):
                expected[tag[2:]] = expected.get(tag[2:], 0) + 1
    assert support == expected


COLLECTIVE_WRITE = """
import errno, sys
from pathlib import Path
from accelerate import Accelerator
from nlp_transfer.errors import UserError
from nlp_transfer.training.checkpoints import write_collectively

acc = Accelerator(cpu=True)
rank = acc.process_index
target = Path(sys.argv[1]) / "best"
log = Path(sys.argv[2]) / f"rank-{rank}.txt"  # a file per process: lines of two processes on one pipe can interleave

def say(line):
    with open(log, "a", encoding="utf-8") as f:
        f.write(line + "\\n")

def write(version, failing_rank=None):
    def parts(tmp):
        (tmp / f"part-{rank}").write_text(version)
        if rank == failing_rank:
            raise OSError(errno.ENOSPC, "No space left on device")
    return parts

def main_fails(tmp):
    raise OSError(errno.EACCES, "Permission denied")

write_collectively(acc, target, write("v1"))
for name, args in (("worker", (write("v2", failing_rank=1),)), ("main", (write("v3"), main_fails))):
    try:
        write_collectively(acc, target, *args)
        say(f"rank {rank} {name}: no error")
    except UserError as err:
        say(f"rank {rank} {name}: {err}")
acc.wait_for_everyone()
say(f"rank {rank} done")
acc.end_training()  # ends the process group: left to the interpreter's exit, gloo can abort the process
"""


def test_a_failed_write_on_any_process_keeps_the_old_folder_and_stops_every_process(tmp_path):
    """One process failing to write its part (disk full), or the main process failing to finish: every
    process gets the error, none hangs, and the folder written before stays whole."""
    script = tmp_path / "collective_write.py"
    script.write_text(COLLECTIVE_WRITE, encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "logs").mkdir()
    done = subprocess.run(
        [*LAUNCH, str(script), str(tmp_path / "data"), str(tmp_path / "logs")],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line for log in (tmp_path / "logs").iterdir() for line in log.read_text(encoding="utf-8").splitlines()}
    best = tmp_path / "data" / "best"
    assert (
        f"rank 1 worker: {best}: cannot write the best model (the disk is full). Free space or fix permissions; earlier checkpoints are intact."
        in lines
    )
    assert any(line.startswith("rank 0 worker:") and "another process could not write its part" in line for line in lines)
    assert any(line.startswith("rank 0 main:") and "(permission denied)" in line for line in lines)
    assert any(line.startswith("rank 1 main:") and "the main process could not finish it" in line for line in lines)
    assert {"rank 0 done", "rank 1 done"} <= lines
    assert {p.name: p.read_text() for p in best.iterdir()} == {"part-0": "v1", "part-1": "v1"}
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["best"]  # no temporary folder left


def test_a_verb_that_stops_on_an_error_ends_the_process_group(tmp_path, capsys):
    """A run that fails under `accelerate launch` never reaches end_training(): the CLI ends the group itself,
    so the interpreter's exit cannot abort on gloo's threads (exit -6 instead of the promised 2)."""
    import torch.distributed as dist

    from nlp_transfer.cli.guard import guard
    from nlp_transfer.errors import UserError

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)

    def fails() -> None:
        raise UserError("train.csv, line 3: no label. Give every row a label.")

    assert guard(False, fails) == 2
    assert not dist.is_initialized()
    assert capsys.readouterr().err == "error: train.csv, line 3: no label. Give every row a label.\n"


def test_self_training_under_two_processes_writes_one_set_of_pseudo_labels_and_the_student_learns(tiny_model_dir, tmp_path):
    """A teacher, its pseudo-labels and a student, each round a run of two processes: every process reads the same
    labels, the main one alone writes and reports them, and the run ends once."""
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(text for text, _ in synthetic_sentiment(300, 3)) + "\n", encoding="utf-8")
    common = [
        *sentiment_recipe(tiny_model_dir, tmp_path, 60, 101),
        f"data.unlabeled_file={unlabeled}",
        "self_training.threshold=0.8",
        "training.epochs=15",
        "training.eval_strategy=steps",  # the teacher's first perfect epoch is still unsure: evaluate late
        "training.eval_steps=30",
        "training.learning_rate=3e-3",
        "training.batch_size=8",
        "training.torch_threads=1",
    ]
    metrics, info, launched = run([*LAUNCH, *common, f"output_dir={tmp_path / 'two'}"], tmp_path / "two")
    rounds = info["self_training"]["rounds"]
    assert info["num_processes"] == 2 and [r["round"] for r in rounds] == [0, 1], rounds
    lines = (tmp_path / "two/self_training/pseudo_labels_round_1.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    assert len(texts) == len(set(texts)) == rounds[1]["pseudo_labels"] >= 30  # written once, by one process
    assert launched.stdout.count("unlabelled texts pseudo-labelled") == 1 and launched.stdout.count("Results (saved in") == 2
    assert sum(map(sum, metrics["test"]["confusion_matrix"]["matrix"])) == 101  # every test row scored once
    assert metrics["test"]["accuracy"] >= 0.8  # the student learned (chance: 0.5)


def test_adapt_under_two_processes_counts_each_held_out_mask_once_and_learns(tiny_model_dir, tmp_path):
    """Masked-LM adaptation under DDP: the steps and held-out masks of one process at the same effective batch."""
    from tests.test_adapt import repetitive_corpus

    texts = repetitive_corpus(tmp_path / "texts.txt")
    common = [
        "recipes/adapt.py",
        "recipes/configs/adapt/minilm_tapt.yaml",
        f"model={tiny_model_dir}",
        f"data.train_file={texts}",
        "training.epochs=2",
        "training.learning_rate=2e-3",
        "training.warmup_ratio=0.0",
        "training.torch_threads=1",
    ]
    (two, two_info, launched), (one, one_info, _) = two_processes_and_one(common, tmp_path)
    assert two_info["num_processes"] == 2 and two_info["global_steps"] == one_info["global_steps"] == 2 * 17  # 270 lines
    assert two["before"]["masked_tokens"] == one["before"]["masked_tokens"] == two["after"]["masked_tokens"] > 0
    assert two["before"]["loss"] == pytest.approx(one["before"]["loss"], rel=1e-4)  # the same masks, scored once each
    assert two["after"]["loss"] < two["before"]["loss"] - 1.0  # it learned the small vocabulary
    assert launched.stdout.count("adapted model in") == 1
