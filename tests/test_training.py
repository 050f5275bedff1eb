"""The training loop on a tiny random model: it learns, it is reproducible, and it resumes exactly."""

import json
import shutil

import numpy as np
import pytest
import torch

from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.pipeline import run_training
from nlp_transfer.training import LengthGroupedBatchSampler
from tests.conftest import tiny_overrides


def config_for(files, model_dir, out, **extra):
    overrides = tiny_overrides(
        model_dir,
        out,
        **{
            "data.train_file": files["train"],
            "data.validation_file": files["validation"],
            "data.test_file": files["test"],
            "training.epochs": 4,
            "training.learning_rate": 2e-3,
            "training.logging_steps": 5,
            **extra,
        },
    )
    return load_config(None, overrides)


def test_tiny_model_learns_heldout_sentiment(sentiment_files, tiny_model_dir, tmp_path):
    result = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "run"))
    # balanced binary task: chance is 0.5
    assert result.metrics["test"]["accuracy"] >= 0.8
    assert result.metrics["validation"]["f1_macro"] >= 0.8
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    assert set(saved) == {"validation", "test"}
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["data_files"]["train_file"]["sha256"] and info["versions"]["torch"]
    assert len(info["history"]) == 4
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert (tmp_path / "run" / "confusion_matrix_test.png").is_file()
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))


@pytest.mark.parametrize("strategy", ["full", "frozen"])
def test_validation_is_scored_once_and_matches_a_fresh_scoring_of_the_saved_model(
    strategy, sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    """The loop's best evaluation is reused as the run's validation figures (frozen: scored on cached features)."""
    import nlp_transfer.pipeline as pipeline
    from nlp_transfer.inference import evaluate_file

    scored = []
    real = pipeline.evaluate_model
    monkeypatch.setattr(
        pipeline, "evaluate_model", lambda model, dataset, *a, **k: scored.append(len(dataset)) or real(model, dataset, *a, **k)
    )
    config = config_for(sentiment_files, tiny_model_dir, tmp_path / "run", strategy=strategy, **{"training.epochs": 2})
    result = run_training(config)
    assert scored == [100]  # the test split only: validation was scored by the loop, with these weights
    fresh = evaluate_file(tmp_path / "run", str(sentiment_files["validation"]), config.data, device="cpu")
    reused = result.metrics["validation"]
    assert reused["confusion_matrix"] == fresh["confusion_matrix"]
    for key in ("accuracy", "f1_macro", "precision_macro"):
        assert reused[key] == pytest.approx(fresh[key], abs=1e-6), key
    # Cached features and a fresh encoding can differ in the last float bits (other batch shapes take other
    # kernels on AVX-512 CPUs), which may reorder one near-tied (positive, negative) pair: allow that one pair.
    counts = [sum(row) for row in fresh["confusion_matrix"]["matrix"]]
    assert reused["roc_auc"] == pytest.approx(fresh["roc_auc"], abs=1 / (counts[0] * counts[1]) + 1e-6)


def test_same_seed_same_metrics(sentiment_files, tiny_model_dir, tmp_path):
    a = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "a", **{"training.epochs": 1}))
    b = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "b", **{"training.epochs": 1}))
    assert a.metrics == b.metrics
    wa = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert wa == (tmp_path / "b" / "model.safetensors").read_bytes()


def logged_steps(run_dir, tag="train/loss"):
    """The steps TensorBoard shows for ``tag`` in a run directory's logs (its purges applied), in order."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(run_dir / "logs"))
    mux.Reload()
    return sorted(e.step for run in mux.Runs() if tag in mux.GetAccumulator(run).Tags()["scalars"]
                  for e in mux.Scalars(run, tag))  # fmt: skip


def test_resume_from_checkpoint_equals_uninterrupted(sentiment_files, tiny_model_dir, tmp_path):
    """Train 2 epochs; separately train 1 epoch, keep its checkpoint, then resume to 2: identical weights and logs."""
    full = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "full", **{"training.epochs": 2}))
    first = config_for(
        sentiment_files, tiny_model_dir, tmp_path / "part", **{"training.epochs": 2, "training.keep_checkpoints": True}
    )
    run_training(first)
    # drop the final checkpoint, keeping the one written after epoch 1 as if the process died during epoch 2
    checkpoints = sorted((tmp_path / "part" / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 2
    import shutil

    shutil.rmtree(checkpoints[-1])
    resumed = run_training(first, resume=True)
    assert resumed.metrics == full.metrics
    # TensorBoard shows each step once: what the interrupted run logged after its checkpoint is hidden (it was shown twice)
    assert len(logged_steps(tmp_path / "full")) >= 4
    assert logged_steps(tmp_path / "part") == logged_steps(tmp_path / "full")
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


def killed_while_saving(config, monkeypatch):
    """Train ``config`` to the end and fail while writing the run directory, as a process killed there would."""
    import nlp_transfer.pipeline as pipeline

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "save_outputs", killed)
        with pytest.raises(KeyboardInterrupt):
            run_training(config)


@pytest.mark.parametrize("strategy", ["full", "gradual_unfreezing"])
def test_the_checkpoint_after_the_last_epoch_holds_no_optimizer_state_and_resumes_to_the_same_model(
    sentiment_files, tiny_model_dir, tmp_path, monkeypatch, strategy
):
    """gradual_unfreezing: a run resumed after its last step recorded the head alone as trainable in its last epoch
    (no epoch was left to run its callback)."""
    from nlp_transfer.training.checkpoints import SIZES_FILE, TRAINING_OVER_FILE

    extra = {"training.epochs": 2, "strategy": strategy}
    full = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "full", **extra))
    config = config_for(sentiment_files, tiny_model_dir, tmp_path / "part", **extra)
    killed_while_saving(config, monkeypatch)
    first, last = sorted((tmp_path / "part" / "checkpoints").glob("step-*"))
    assert (first / "optimizer.bin").is_file() and not (first / TRAINING_OVER_FILE).exists()  # epoch 1: everything
    assert sorted(p.name for p in last.iterdir()) == sorted([
        "best_model.safetensors", SIZES_FILE, "random_states_0.pkl", "trainer_state.json", TRAINING_OVER_FILE
    ])  # fmt: skip
    resumed = run_training(config, resume=True)
    assert resumed.metrics == full.metrics and resumed.info["history"] == full.info["history"]
    ends = [r.info.get("trainable_parameters_last_epoch") for r in (resumed, full)]
    assert ends[0] == ends[1] and (strategy == "full" or ends[0] > resumed.info["trainable_parameters"]), ends
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()
    assert not (tmp_path / "part" / "checkpoints").exists()


def test_kept_checkpoints_keep_the_optimizer_state_after_the_last_epoch(sentiment_files, tiny_model_dir, tmp_path):
    extra = {"training.epochs": 1, "training.keep_checkpoints": True}
    run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "run", **extra))
    (last,) = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))
    assert (last / "optimizer.bin").is_file() and (last / "model.safetensors").is_file()
    assert json.loads((last / "trainer_state.json").read_text())["epoch"] == 1 and not (last / "training_over").exists()


def test_resume_refuses_a_data_file_whose_rows_changed_and_a_finished_run_keeps_no_record(
    sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    from nlp_transfer.errors import UserError
    from nlp_transfer.pipeline import DATA_RECORD

    config = config_for(sentiment_files, tiny_model_dir, tmp_path / "part", **{"training.epochs": 1})
    killed_while_saving(config, monkeypatch)
    assert (tmp_path / "part" / DATA_RECORD).is_file()
    train = sentiment_files["train"]
    original = train.read_bytes()
    train.write_bytes(b"\n".join(original.splitlines()[:41]) + b"\n")  # the same path, 40 rows left
    with pytest.raises(UserError, match=r"data\.train_file=.* changed since the run started"):
        run_training(config, resume=True)
    train.write_bytes(original)
    test = sentiment_files["test"]
    kept = test.read_bytes()
    test.write_bytes(kept + b"a wonderful extra row,positive\n")  # read once training is over: it may change
    try:
        resumed = run_training(config, resume=True)
    finally:
        test.write_bytes(kept)
    assert resumed.metrics["validation"] and not (tmp_path / "part" / DATA_RECORD).exists()


@pytest.mark.parametrize("damage", ["state", "weights", "random_states_0.pkl", "best_model.safetensors", "processes"])
def test_a_damaged_checkpoint_is_one_error_naming_it(sentiment_files, tiny_model_dir, tmp_path, monkeypatch, damage):
    """Accelerate skips random states it cannot read (the resumed run was no longer exact), and a cut best model
    crashed with a traceback after the last step: every file's size is now checked when the run resumes."""
    from nlp_transfer.errors import UserError

    config = config_for(sentiment_files, tiny_model_dir, tmp_path / "part", **{"training.epochs": 2})
    killed_while_saving(config, monkeypatch)
    first, last = sorted((tmp_path / "part" / "checkpoints").glob("step-*"))
    if damage == "state":
        (last / "trainer_state.json").write_text('{"epoch": 0,', encoding="utf-8")
    elif damage == "weights":  # the last checkpoint gone, the one before cut short
        shutil.rmtree(last)
        weights = first / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "processes":  # written by two processes, resumed by one: batches and schedule would change
        shutil.copy(last / "random_states_0.pkl", last / "random_states_1.pkl")
        with pytest.raises(UserError, match=r"written by 2 process\(es\), resumed with 1; .* would mix two different"):
            run_training(config, resume=True)
        return
    else:
        cut = last / damage
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(UserError, match="a damaged checkpoint") as caught:
        run_training(config, resume=True)
    assert str(first if damage == "weights" else last) in str(caught.value) and "\n" not in str(caught.value)
    if damage.endswith((".pkl", ".safetensors")):
        assert f"{damage} was written with" in str(caught.value)


def test_a_run_that_stopped_early_resumes_to_its_end_without_training_on(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    extra = {
        "training.epochs": 6,
        "training.eval_strategy": "steps",
        "training.eval_steps": 5,
        "training.early_stopping_patience": 2,
        "training.learning_rate": 1e-9,
    }
    full = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "full", **extra))
    config = config_for(sentiment_files, tiny_model_dir, tmp_path / "part", **extra)
    killed_while_saving(config, monkeypatch)
    resumed = run_training(config, resume=True)
    assert resumed.info["stopped_early"] and full.info["stopped_early"]
    assert resumed.info["global_steps"] == full.info["global_steps"] == 15  # not one step more after the resume
    assert resumed.info["history"] == full.info["history"] and [h["step"] for h in resumed.info["history"]] == [5, 10, 15]
    assert resumed.metrics == full.metrics


def test_existing_output_dir_is_not_overwritten(sentiment_files, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"exists and is not empty.*--overwrite"):
        run_training(config_for(sentiment_files, tiny_model_dir, out, **{"training.epochs": 1}))
    assert (out / "precious.txt").read_text() == "keep me"


def test_bad_data_leaves_no_output_dir(tmp_path, tiny_model_dir):
    (tmp_path / "bad.csv").write_text("review,label\nok,a\n", encoding="utf-8")
    config = load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **{"data.train_file": tmp_path / "bad.csv"}))
    with pytest.raises(UserError, match="no column 'text'"):
        run_training(config)
    assert not (tmp_path / "run").exists()


def test_early_stopping_and_steps_evaluation(sentiment_files, tiny_model_dir, tmp_path):
    config = config_for(
        sentiment_files,
        tiny_model_dir,
        tmp_path / "run",
        **{
            "training.epochs": 6,
            "training.eval_strategy": "steps",
            "training.eval_steps": 5,
            "training.early_stopping_patience": 2,
            "training.learning_rate": 1e-9,
        },
    )
    result = run_training(config)
    assert result.info["stopped_early"]
    assert len(result.info["history"]) == 3  # first evaluation sets the best, two more without improvement
    assert [h["step"] for h in result.info["history"]] == [5, 10, 15]


def test_multilabel_training_and_class_weights(tmp_path, tiny_model_dir):
    from tests.conftest import NEGATIVE, POSITIVE

    rows = []
    for i in range(300):
        labels = []
        words = ["the", "thing", "was"]
        if i % 2 == 0:
            labels.append("good")
            words.append(POSITIVE[i % len(POSITIVE)])
        if i % 3 == 0:
            labels.append("bad")
            words.append(NEGATIVE[i % len(NEGATIVE)])
        rows.append((" ".join(words), "|".join(labels)))
    path = tmp_path / "ml.csv"
    from tests.conftest import write_csv

    write_csv(path, rows[:240], header=("text", "labels"))
    write_csv(tmp_path / "val.csv", rows[240:], header=("text", "labels"))
    config = load_config(
        None,
        tiny_overrides(
            tiny_model_dir,
            tmp_path / "run",
            **{
                "task": "multilabel",
                "data.train_file": path,
                "data.validation_file": tmp_path / "val.csv",
                "data.label_column": "labels",
                "training.epochs": 15,
                "training.learning_rate": 3e-3,
                "training.class_weights": "balanced",
            },
        ),
    )
    result = run_training(config)
    assert result.metrics["validation"]["f1_micro"] >= 0.8
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["problem_type"] == "multi_label_classification"


@pytest.mark.parametrize("streaming", [False, True])
def test_length_grouped_sampler_is_seeded_and_complete(streaming):
    """Both orders (listed, or streamed group by group) visit every index once, by seed and epoch, with little padding."""
    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=5, group_batches=4, streaming=streaming)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert sorted(i for b in first for i in b) == list(range(1000))
    padded = sum(16 * max(lengths[i] for i in b) for b in first)
    random_order = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    padded_random = sum(16 * max(lengths[i] for i in random_order[s : s + 16]) for s in range(0, 1000, 16))
    assert padded < 0.75 * padded_random
    for epoch in range(6):  # 1000 = 62 x 16 + 8: the short batch always comes last (Accelerate's sharding needs it)
        sampler.set_epoch(epoch)
        sizes = [len(b) for b in sampler]
        assert sizes[:-1] == [16] * 62 and sizes[-1] == 8


def test_gradient_checkpointing_gives_the_same_training(sentiment_files, tiny_model_dir, tmp_path):
    """Recomputing activations in the backward pass changes memory, not results."""
    plain = run_training(config_for(sentiment_files, tiny_model_dir, tmp_path / "plain", **{"training.epochs": 1}))
    checkpointed = run_training(
        config_for(
            sentiment_files, tiny_model_dir, tmp_path / "ckpt", **{"training.epochs": 1, "training.gradient_checkpointing": True}
        )
    )
    assert checkpointed.metrics["validation"]["accuracy"] == pytest.approx(plain.metrics["validation"]["accuracy"], abs=0.02)
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "plain" / "model.safetensors"), load_file(tmp_path / "ckpt" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_torch_compile_run_learns_and_saves_the_plain_model(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    """training.torch_compile=true trains through inductor-compiled graphs and still learns and saves the plain model.

    Validation runs through the eager module (no second, inference-mode graph to compile), and its figure is the
    saved model's. (Compiled dropout draws other random masks than eager, so the weights are not compared with an
    eager run.)
    """
    import torch._dynamo
    from accelerate.utils import is_compiled_module
    from safetensors.torch import load_file

    import nlp_transfer.training.loop as loop

    evaluated, evaluate = [], loop.evaluate_batches

    def recording(model, *args, **kwargs):
        evaluated.append(model)
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate_batches", recording)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = run_training(
        config_for(
            sentiment_files, tiny_model_dir, tmp_path / "compiled", **{"training.epochs": 4, "training.torch_compile": True}
        )
    )
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo captured graphs: the model ran compiled
    assert result.metrics["test"]["accuracy"] >= 0.8  # chance is 0.5
    saved = load_file(tmp_path / "compiled" / "model.safetensors")
    assert saved and not any("_orig_mod" in name for name in saved)  # the plain model, not the compiled wrapper
    assert evaluated and not any(is_compiled_module(model) for model in evaluated)  # validation ran eagerly
    from nlp_transfer.inference import evaluate_file

    config = config_for(sentiment_files, tiny_model_dir, tmp_path / "compiled")
    reread = evaluate_file(tmp_path / "compiled", str(sentiment_files["validation"]), config.data)
    assert result.metrics["validation"]["accuracy"] == pytest.approx(reread["accuracy"], abs=1e-6)  # the saved model's


def test_sharded_runs_save_the_gathered_state_dict(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    """FSDP / ZeRO-3 hold shards in each process: the run saves the state dict gathered from all of them.

    No sharded backend runs on a CPU, so the gathering is replaced by one that marks the weights; the
    saved model must be the gathered one, not the process's own parameters.
    """
    from accelerate import Accelerator

    import nlp_transfer.pipeline as pipeline
    from nlp_transfer.training.accelerator import full_state_dict

    assert full_state_dict(Accelerator(cpu=True), torch.nn.Linear(2, 2)) is None  # one process: nothing to gather
    seen = {}

    def gathered(accelerator, prepared_model):
        seen["prepared"] = prepared_model
        weights = {k: v.detach().clone() for k, v in accelerator.unwrap_model(prepared_model).state_dict().items()}
        weights["classifier.bias"] = torch.full_like(weights["classifier.bias"], 7.0)
        return weights

    monkeypatch.setattr(pipeline, "full_state_dict", gathered)
    out = tmp_path / "run"
    run_training(config_for(sentiment_files, tiny_model_dir, out, **{"training.epochs": 1}))
    from safetensors.torch import load_file

    assert seen["prepared"] is not None
    assert torch.equal(load_file(str(out / "model.safetensors"))["classifier.bias"], torch.full((2,), 7.0))


@pytest.mark.parametrize(("warmup", "total"), [(0, 10), (3, 10), (10, 10), (4, 7), (1, 1)])
def test_the_schedule_equals_transformers_linear_warmup_step_by_step(warmup, total):
    """Our LambdaLR schedule gives the learning rates of transformers.get_linear_schedule_with_warmup at every step."""
    from transformers import get_linear_schedule_with_warmup

    from nlp_transfer.training.schedule import linear_warmup_then_decay

    def rates(build):
        optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1},
                                     {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.02}])  # fmt: skip
        scheduler = build(optimizer, warmup, total)
        seen = []
        for _ in range(total + 3):
            seen.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
        return seen, scheduler.state_dict()

    ours, state = rates(linear_warmup_then_decay)
    theirs, _ = rates(get_linear_schedule_with_warmup)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert state["last_epoch"] == total + 3 and ours[-1] == [0.0, 0.0]


def test_a_full_fine_tuning_run_never_imports_peft(tmp_path, tiny_model_dir):
    """peft is for LoRA runs: a plain run's process must not pay for importing it (or the Trainer's utilities)."""
    import subprocess
    import sys

    config = {"model": tiny_model_dir, "output_dir": str(tmp_path / "run")}
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from nlp_transfer.config import load_config\n"
        "from nlp_transfer.pipeline import run_training\n"
        "from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv\n"
        f"train = write_csv(Path({str(tmp_path / 'train.csv')!r}), synthetic_sentiment(40, 1))\n"
        f"run_training(load_config(None, tiny_overrides({config['model']!r}, {config['output_dir']!r}, "
        "**{'data.train_file': train, 'data.validation_file': train, 'training.epochs': 1})))\n"
        "print(sorted(m for m in ('peft', 'transformers.trainer_utils', 'transformers.trainer') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]


def test_warm_up_never_covers_every_step_so_a_one_step_run_trains(small_split_files, tiny_model_dir, tmp_path):
    """The first warm-up step runs at rate 0: a warm-up as long as the run (a one-step run at any ratio) left every
    weight as loaded. Warm-up now stops one step short of the run; longer runs keep the Trainer's count."""
    from safetensors.torch import load_file

    from nlp_transfer.training.loop import warmup_steps

    assert [warmup_steps(0.1, n) for n in (1, 2, 10, 100)] == [0, 1, 1, 10]
    assert warmup_steps(1.0, 4) == 3 and warmup_steps(0.0, 5) == 0
    config = config_for(small_split_files, tiny_model_dir, tmp_path / "run", **{"training.epochs": 1, "training.batch_size": 64})
    result = run_training(config)
    assert result.info["global_steps"] == 1
    before, after = load_file(f"{tiny_model_dir}/model.safetensors"), load_file(str(tmp_path / "run/model.safetensors"))
    moved = [k for k, v in before.items() if f"bert.{k}" in after and not torch.equal(v, after[f"bert.{k}"])]
    assert moved, "the one step trained nothing"


def test_patience_reached_at_the_last_evaluation_is_no_early_stop(sentiment_files, tiny_model_dir, tmp_path, capsys):
    config = config_for(
        sentiment_files, tiny_model_dir, tmp_path / "run",
        **{"training.epochs": 2, "training.early_stopping_patience": 1, "training.learning_rate": 1e-9},
    )  # fmt: skip
    result = run_training(config)
    assert len(result.info["history"]) == 2 and not result.info["stopped_early"]
    assert "Early stopping" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        {"training.metric_for_best_model": "per_class"},
        {"strategy": "frozen", "transfer.head_fit": "logistic", "training.metric_for_best_model": "bogus"},
        {"training.metric_for_best_model": "f1"},  # NER's name, not a classifier's
    ],
)
def test_a_best_model_metric_the_task_lacks_is_refused_before_training(small_split_files, tiny_model_dir, tmp_path, extra):
    from nlp_transfer.errors import UserError

    name = extra["training.metric_for_best_model"]
    with pytest.raises(UserError, match=rf"{name!r} is not a validation metric of this task; choose auto or one of .*f1_macro"):
        run_training(config_for(small_split_files, tiny_model_dir, tmp_path / "run", **{"training.epochs": 1, **extra}))
    assert not (tmp_path / "run").exists()  # refused before the run directory or a step


def test_metric_names_are_the_numbers_compute_metrics_reports(tiny_model_dir):
    import numpy as np

    from nlp_transfer.evaluation.metrics import scalar_metrics
    from nlp_transfer.tasks.classification import build_classification_task
    from nlp_transfer.tasks.token_classification import build_token_classification_task

    binary = build_classification_task(model=tiny_model_dir, labels=["negative", "positive"])
    logits, labels = np.array([[2.0, -1.0], [0.0, 1.0], [1.0, 0.0]]), np.array([0, 1, 1])
    assert binary.metric_names() == set(scalar_metrics(binary.compute_metrics(logits, labels)))
    assert "roc_auc" in binary.metric_names() and "subset_accuracy" not in binary.metric_names()
    multi = build_classification_task(model=tiny_model_dir, labels=["a", "b", "c"], multi_label=True)
    assert multi.metric_names() == set(scalar_metrics(multi.compute_metrics(np.zeros((2, 3)), np.array([[1, 0, 0], [0, 1, 1]]))))
    tagger = build_token_classification_task(model=tiny_model_dir, labels=["O", "B-PER", "I-PER"])
    assert {"f1", "precision", "recall", "accuracy"} <= tagger.metric_names() and "f1_micro" not in tagger.metric_names()


def test_a_metric_missing_from_one_evaluation_is_refused_with_the_numbers_there():
    from nlp_transfer.errors import UserError
    from nlp_transfer.training.loop import selection_value

    with pytest.raises(UserError, match=r"'roc_auc' is not a validation metric that is a number; choose one of \['accuracy'\]"):
        selection_value({"accuracy": 0.5, "per_class": {}}, "roc_auc")


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a GPU")
def test_fp16_on_a_cpu_is_refused_rather_than_trained_in_float32_and_recorded_as_fp16(
    small_split_files, tiny_model_dir, tmp_path
):
    from nlp_transfer.errors import UserError

    with pytest.raises(UserError, match=r"training\.mixed_precision=fp16 needs a GPU"):
        run_training(config_for(small_split_files, tiny_model_dir, tmp_path / "run", **{"training.mixed_precision": "fp16"}))


def test_hparams_of_a_path_with_undecodable_bytes_can_be_recorded():
    """A file name Python read from non-UTF-8 bytes holds surrogates; TensorBoard's hparams crashed on it (exit 1)."""
    from nlp_transfer.training.accelerator import flat_hparams

    flat = flat_hparams({"data": {"train_file": b"t\xe9.csv".decode("utf-8", "surrogateescape")}, "seed": 3})
    assert flat["seed"] == 3 and flat["data.train_file"] == "t\ufffd.csv"
    flat["data.train_file"].encode("utf-8")  # what the tracker does with it


def test_accumulating_two_batches_of_8_is_one_batch_of_16_when_an_epoch_ends_mid_cycle(sentiment_files, tiny_model_dir, tmp_path):
    """24 rows: batch 16 takes 16 + 8 rows; batch 8 with 2 accumulated takes (8 + 8) + 8, whose last cycle's gradient
    Accelerate cut to half (a tenth of the whole update differed). Without dropout the two runs are the same run."""
    import shutil

    from safetensors.torch import load_file

    still = tmp_path / "no-dropout"
    shutil.copytree(tiny_model_dir, still)
    config = json.loads((still / "config.json").read_text())
    (still / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
    same = {"data.max_train_samples": 24, "training.group_by_length": False, "training.warmup_ratio": 0.0}
    same |= {"training.max_grad_norm": None, "training.epochs": 2}
    runs = {}
    for name, extra in (
        ("big", {"training.batch_size": 16}),
        ("accumulated", {"training.batch_size": 8, "training.gradient_accumulation_steps": 2}),
    ):
        run_training(config_for(sentiment_files, str(still), tmp_path / name, **same, **extra))
        runs[name] = load_file(tmp_path / name / "model.safetensors")
    base = load_file(still / "model.safetensors")
    start = {f"bert.{k}": v for k, v in base.items()}  # the encoder's weights, as the classifier names them
    moved = max((runs["big"][k] - start[k]).abs().max().item() for k in runs["big"] if k in start)
    gap = max((runs["big"][k] - runs["accumulated"][k]).abs().max().item() for k in runs["big"])
    assert moved > 1e-3 and gap < 1e-5 * max(1.0, moved * 100), (moved, gap)


def test_roc_auc_on_a_validation_split_of_one_class_is_refused_before_training(sentiment_files, tiny_model_dir, tmp_path):
    """It trained an epoch, then failed with "not a validation metric", leaving a folder that needed --overwrite."""
    from nlp_transfer.errors import ConfigError
    from tests.conftest import write_csv

    rows = [line.split(",", 1) for line in sentiment_files["validation"].read_text().splitlines()[1:]]
    positives = write_csv(tmp_path / "positives.csv", [(text, label) for text, label in rows if label == "positive"])
    out = tmp_path / "run"
    config = config_for(
        sentiment_files, tiny_model_dir, out, **{"data.validation_file": positives, "training.metric_for_best_model": "roc_auc"}
    )
    with pytest.raises(ConfigError, match="roc_auc is undefined on a validation split of one class"):
        run_training(config)
    assert not out.exists()
