"""Pushing runs to the Hub, end to end: the real huggingface_hub client against the loopback HubServer.

huggingface_hub reads HF_ENDPOINT when it is imported, so everything that talks to the server runs in ONE
client subprocess (importing nlp_transfer costs seconds): it runs the CLI's ``main`` for each push, one
training run with ``hub.push=true``, then downloads the repositories and loads them with transformers and
peft. The tests below check what it reported and what the server holds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from nlp_transfer.config import load_config
from nlp_transfer.errors import ConfigError
from nlp_transfer.hub import build_model_card, check_card_metadata, collect_files, resolve_mode
from nlp_transfer.hub.push import is_stale
from nlp_transfer.pipeline import run_training
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv

try:
    from hub_server import HubServer
except ModuleNotFoundError:  # tests/ is not on sys.path under some import modes
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub_server import HubServer

TOKEN = "hf_aliceWriteToken0123456789abcdefXYZ"
BOB_TOKEN = "hf_bobWriteToken0123456789abcdefXYZ00"
TEXTS = ["the movie was excellent and quite lovely", "awful food and terrible service", "plot staff room"]
REPO = Path(__file__).resolve().parent.parent

CLIENT = r"""
import contextlib, io, json, os, sys, traceback
import nlp_transfer.hub.push as push
from nlp_transfer.cli import main

push.RETRY_WAIT_SECONDS = 0.05
plan = json.loads(open(sys.argv[1]).read())
results = {}

def with_token(token):
    os.environ.pop("HF_TOKEN", None)
    if token:
        os.environ["HF_TOKEN"] = token

for step in plan["steps"]:
    with_token(step.get("token"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if step["kind"] == "cli":
            rc = main(["push", *step["args"]])
        else:  # a training run that pushes at its end
            from nlp_transfer.config import load_config
            from nlp_transfer.pipeline import run_training
            try:
                run_training(load_config(None, step["overrides"]))
                rc = 0
            except Exception:
                traceback.print_exc()
                rc = 1
    results[step["name"]] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}

import torch
from huggingface_hub import snapshot_download
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

os.environ.pop("HF_TOKEN", None)
def logits(model, tokenizer):
    batch = tokenizer(plan["texts"], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits.tolist()

for name, spec in plan["downloads"].items():
    path = snapshot_download(spec["repo"], token=plan["token"], cache_dir=plan["cache"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    if spec.get("base"):
        from peft import PeftModel
        labels = spec["labels"]
        base = AutoModelForSequenceClassification.from_pretrained(
            spec["base"], num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)})
        model = PeftModel.from_pretrained(base, path)
        labels_out = None
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path)
        clf = pipeline("text-classification", model=path)
        labels_out = [r["label"] for r in clf(plan["texts"])]
    results[name] = {"files": sorted(os.listdir(path)), "logits": logits(model, tokenizer), "labels": labels_out}
print("RESULT:" + json.dumps(results))
"""


def local_logits(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hub-data")
    return {
        "train": write_csv(base / "train.csv", synthetic_sentiment(200, 1)),
        "validation": write_csv(base / "validation.csv", synthetic_sentiment(60, 2)),
        "test": write_csv(base / "test.csv", synthetic_sentiment(60, 3)),
    }


def _overrides(tiny_model_dir: str, files: dict[str, Path], out: Path, **extra: object) -> list[str]:
    return tiny_overrides(
        tiny_model_dir,
        out,
        **{
            "data.train_file": files["train"],
            "data.validation_file": files["validation"],
            "data.test_file": files["test"],
            "training.epochs": 2,
            "training.learning_rate": 2e-3,
            **extra,
        },
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir, data_files) -> Path:
    """A tiny full fine-tuning run, with a checkpoint kept and a stray secret file (neither may be pushed)."""
    out = tmp_path_factory.mktemp("hub-runs") / "full"
    run_training(load_config(None, _overrides(tiny_model_dir, data_files, out, **{"training.keep_checkpoints": True})))
    assert (out / "checkpoints").is_dir() and (out / "logs").is_dir()
    (out / "notes.txt").write_text(f"my token is {TOKEN}\n")
    return out


@pytest.fixture(scope="module")
def lora_run(trained_run, tiny_model_dir) -> Path:
    """A run laid out as strategy=lora writes it: a merged model on top, the adapter in RUN_DIR/adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    out = trained_run.parent / "lora"
    out.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "metrics.json", "confusion_matrix_test.png"):
        shutil.copy(trained_run / name, out / name)
    info = json.loads((trained_run / "run_info.json").read_text())
    (out / "run_info.json").write_text(json.dumps({**info, "strategy": "lora"}))
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    config["strategy"] = "lora"
    config["hub_token"] = TOKEN  # a secret that slipped into a config must not be uploaded
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    labels = info["labels"]
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    lora = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"], modules_to_save=["classifier"])
    model = get_peft_model(base, lora)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter change the predictions
            torch.nn.init.normal_(param, std=0.5)
    model.save_pretrained(out / "adapter")
    model.merge_and_unload().save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def hub(trained_run, lora_run, tiny_model_dir, data_files, tmp_path_factory):
    """Run every client step once against one server; yields (server, client results)."""
    work = tmp_path_factory.mktemp("hub-client")
    (work / "empty-run").mkdir()
    (work / "empty-run" / "metrics.json").write_text("{}")
    labels = json.loads((trained_run / "run_info.json").read_text())["labels"]

    def push(name: str, run: Path, repo_id: str, *flags: str, token: str | None = TOKEN) -> dict:
        return {"name": name, "kind": "cli", "token": token, "args": [str(run), "--repo-id", repo_id, *flags]}

    steps = [
        push("full", trained_run, "alice/tiny-sentiment", "--license", "mit"),
        push("again", trained_run, "alice/tiny-sentiment", "--token", TOKEN, token=None),
        push("adapter", lora_run, "alice/tiny-lora", "--adapter"),
        push("merged", lora_run, "alice/tiny-lora-merged", "--merged", "--private"),
        push("switch_adapter", lora_run, "alice/switch", "--adapter"),
        push("switch_merged", lora_run, "alice/switch", "--merged"),
        push("back_merged", lora_run, "alice/switch-back", "--merged"),
        push("back_adapter", lora_run, "alice/switch-back", "--adapter"),
        push("bad_token", trained_run, "alice/nope", token="hf_notARealToken000000000000000000"),
        push("no_token", trained_run, "alice/nope", token=None),
        push("foreign", trained_run, "bob/stolen"),
        push("nothing", work / "empty-run", "alice/nope"),
        push("no_adapter", trained_run, "alice/nope", "--adapter"),
        push("bad_repo_id", trained_run, "just-a-name"),
        push("retried", trained_run, "alice/retried"),
        push("doomed", trained_run, "alice/doomed"),
        {
            "name": "train_push",
            "kind": "train",
            "token": TOKEN,
            "overrides": _overrides(
                tiny_model_dir,
                data_files,
                work / "trained-and-pushed",
                **{"training.epochs": 1, "hub.push": True, "hub.repo_id": "alice/from-config", "hub.license": "mit"},
            ),
        },
    ]
    downloads = {
        "get_full": {"repo": "alice/tiny-sentiment"},
        "get_adapter": {"repo": "alice/tiny-lora", "base": tiny_model_dir, "labels": labels},
        "get_merged": {"repo": "alice/tiny-lora-merged"},
    }
    plan = {"steps": steps, "downloads": downloads, "texts": TEXTS, "token": TOKEN, "cache": str(work / "cache")}
    (work / "plan.json").write_text(json.dumps(plan))

    with HubServer(tokens={TOKEN: "alice", BOB_TOKEN: "bob"}, orgs={"alice": [], "bob": []}) as server:
        server.create_repo("bob/stolen")
        server.fail_next(1, "/alice/retried/commit/", status=500)
        server.fail_next(3, "/alice/doomed/commit/", status=502)
        env = {**server.client_env(hf_home=str(work / "hf_home")), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", CLIENT, str(work / "plan.json")],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\nserver: {server.errors}"
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT:"))
        results = json.loads(line[len("RESULT:") :])
        results["_process"] = {"stdout": proc.stdout, "stderr": proc.stderr}
        yield server, results


def _ok(results: dict, name: str) -> dict:
    step = results[name]
    assert step["rc"] == 0, step
    return step


def test_pushed_model_downloads_and_predicts_the_same(hub, trained_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    server, results = hub
    assert _ok(results, "full")["stdout"].strip().endswith(f"{server.url}/alice/tiny-sentiment")
    repo = server.repos["alice/tiny-sentiment"]
    assert set(repo.files) == {
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "config.yaml",
        "metrics.json",
        "run_info.json",
        "confusion_matrix_validation.png",
        "confusion_matrix_test.png",
    }  # no checkpoints/, logs/ or stray files
    assert repo.files["model.safetensors"] == (trained_run / "model.safetensors").read_bytes()
    assert "model.safetensors" in repo.head.lfs
    expected = local_logits(
        AutoModelForSequenceClassification.from_pretrained(trained_run), AutoTokenizer.from_pretrained(trained_run), TEXTS
    )
    got = results["get_full"]
    assert torch.allclose(torch.tensor(got["logits"]), expected, atol=1e-5)
    id2label = json.loads((trained_run / "config.json").read_text())["id2label"]
    assert got["labels"] == [id2label[str(i)] for i in expected.argmax(-1).tolist()]


def test_existing_repo_is_reused_with_one_commit_per_push(hub):
    server, results = hub
    _ok(results, "again")
    repo = server.repos["alice/tiny-sentiment"]
    assert repo.commits[0].title == "initial commit"
    # The second push gave no --license, so its card keeps the license the first push set; with every file
    # the same as the first push's, the Hub records no empty commit (a dropped license would show up as a
    # third commit whose card has none).
    from huggingface_hub import ModelCard

    assert len(repo.commits) == 2
    assert ModelCard(repo.head.files["README.md"].decode()).data.license == "mit"


def test_lora_adapter_push_loads_with_peft(hub, lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    server, results = hub
    _ok(results, "adapter")
    files = server.repos["alice/tiny-lora"].files
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert "config.json" not in files and "model.safetensors" not in files
    labels = json.loads((lora_run / "run_info.json").read_text())["labels"]
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    expected = local_logits(PeftModel.from_pretrained(base, lora_run / "adapter"), AutoTokenizer.from_pretrained(lora_run), TEXTS)
    assert torch.allclose(torch.tensor(results["get_adapter"]["logits"]), expected, atol=1e-5)
    card = files["README.md"].decode()
    assert "library_name: peft" in card and "PeftModel.from_pretrained" in card


def test_merged_lora_push_loads_without_peft(hub, lora_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    server, results = hub
    _ok(results, "merged")
    repo = server.repos["alice/tiny-lora-merged"]
    assert repo.private
    assert "adapter_config.json" not in repo.files and "config.json" in repo.files
    expected = local_logits(
        AutoModelForSequenceClassification.from_pretrained(lora_run), AutoTokenizer.from_pretrained(lora_run), TEXTS
    )
    assert torch.allclose(torch.tensor(results["get_merged"]["logits"]), expected, atol=1e-5)
    assert torch.allclose(
        torch.tensor(results["get_merged"]["logits"]), torch.tensor(results["get_adapter"]["logits"]), atol=1e-4
    )
    # pushing the merged model over an adapter repo removes the adapter, which would hijack from_pretrained
    _ok(results, "switch_adapter")
    _ok(results, "switch_merged")
    switched = server.repos["alice/switch"].files
    assert "adapter_config.json" not in switched and "adapter_model.safetensors" not in switched
    assert "model.safetensors" in switched
    # and an adapter pushed over a full model removes the full model's config.json, which made from_pretrained look for
    # model.safetensors (it loaded nothing)
    _ok(results, "back_merged")
    _ok(results, "back_adapter")
    back = server.repos["alice/switch-back"].files
    assert "adapter_config.json" in back and "config.json" not in back and "model.safetensors" not in back
    assert is_stale("calibration.json") and is_stale("vocab.txt") and is_stale("onnx/model.onnx")
    assert not is_stale("notes.md") and not is_stale("examples/config.json")  # files a push never writes stay


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("bad_token", "token was refused (401"),
        ("no_token", "no Hugging Face token: set the HF_TOKEN environment variable"),
        ("foreign", "no write access to 'bob' (403"),
        ("nothing", "nothing to push: no config.json with model weights"),
        ("no_adapter", "no LoRA adapter to push"),
        ("bad_repo_id", "write it as OWNER/NAME"),
    ],
)
def test_refusals_are_clear_and_exit_2(hub, step, message):
    server, results = hub
    out = results[step]
    assert out["rc"] == 2
    assert out["stderr"].startswith("error: ") and message in out["stderr"], out["stderr"]
    assert "Traceback" not in out["stderr"]
    assert not {"alice/nope", "just-a-name"} & set(server.repos)
    assert set(server.repos["bob/stolen"].files) == {".gitattributes"}


def test_failed_commit_is_retried_or_leaves_no_repo(hub):
    server, results = hub
    _ok(results, "retried")
    assert "retrying" in results["retried"]["stderr"]
    assert len(server.repos["alice/retried"].commits) == 2
    doomed = results["doomed"]
    assert doomed["rc"] == 2 and "502 while committing the files" in doomed["stderr"]
    assert "alice/doomed" not in server.repos  # the repository created for the push was removed again
    commits = [r for r in server.request_log if r.method == "POST" and "/alice/doomed/commit/" in r.path]
    assert len(commits) == 3


def test_training_pushes_when_the_config_says_so(hub):
    server, results = hub
    out = _ok(results, "train_push")
    assert f"pushed to {server.url}/alice/from-config" in out["stdout"]
    files = server.repos["alice/from-config"].files
    assert {"config.json", "model.safetensors", "metrics.json", "README.md"} <= set(files)
    assert "hub:" in files["config.yaml"].decode() and "license: mit" in files["README.md"].decode()


def test_token_never_leaks(hub):
    server, results = hub
    assert server.find_leaks(TOKEN) == []
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.request_log)
    assert not any(TOKEN in r.path for r in server.request_log)
    for name, out in results.items():
        assert TOKEN not in json.dumps(out), name
    config_yaml = yaml.safe_load(server.repos["alice/tiny-lora"].files["config.yaml"])
    assert "hub_token" not in config_yaml and config_yaml["strategy"] == "lora"
    for repo in server.repos.values():
        assert "notes.txt" not in repo.files
        assert not any(p.startswith(("checkpoints/", "logs/")) for p in repo.files)


def test_model_card_validates_and_carries_the_metrics(hub, trained_run):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    server, _ = hub
    first_push = server.repos["alice/tiny-sentiment"].commits[1]  # with --license mit
    card = ModelCard(first_push.files["README.md"].decode())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert card.data.license == "mit"
    assert {"nlp-transfer", "full", "classification"} <= set(card.data.tags)
    assert card.data.datasets is None  # local files: no link to a Hub dataset repository named "train.csv"
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "tiny-sentiment"
    metrics = json.loads((trained_run / "metrics.json").read_text())
    found = {(r.dataset_split, r.metric_type, r.metric_config): r.metric_value for r in results}
    assert found[("test", "accuracy", None)] == round(metrics["test"]["accuracy"], 4)
    assert found[("validation", "f1", "macro")] == round(metrics["validation"]["f1_macro"], 4)
    assert all(r.task_type == "text-classification" for r in results)
    assert {r.dataset_type for r in results} == {"csv"}  # the format's builder, not a local folder name
    assert "![Confusion matrix (test)](confusion_matrix_test.png)" in card.text
    assert 'pipeline("text-classification"' in card.text.replace("'", '"')
    assert "training.learning_rate" in card.text
    check_card_metadata(card)


def test_card_license_comes_from_the_option_or_the_base_model(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    assert build_model_card(run, repo_id="a/b").data.license is None  # the tiny base model has no card
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "base_model": "sentence-transformers/all-MiniLM-L6-v2"}))
    card = build_model_card(run, repo_id="a/b")
    assert card.data.license == "apache-2.0"  # read from the packaged copy's model card, offline
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert build_model_card(run, repo_id="a/b", license="mit").data.license == "mit"
    (run / "run_info.json").write_text(json.dumps({**info, "task": "ner"}))
    assert build_model_card(run, repo_id="a/b").data.pipeline_tag == "token-classification"


def test_files_chosen_for_each_mode(trained_run, lora_run):
    assert resolve_mode(trained_run, "auto") == "merged"
    merged = collect_files(trained_run, "merged")
    assert "model.safetensors" in merged and not any(p.startswith(("checkpoints", "logs")) for p in merged)
    # the uploaded run info names its data files, not where they were on this machine
    local = json.loads((trained_run / "run_info.json").read_text())["data_files"]
    uploaded = json.loads(merged["run_info.json"])["data_files"]
    assert local["train_file"]["path"] != "train.csv" and uploaded["train_file"]["path"] == "train.csv"
    assert uploaded["train_file"]["sha256"] == local["train_file"]["sha256"]
    adapter = collect_files(lora_run, "adapter", base_model="sentence-transformers/all-MiniLM-L6-v2")
    config = json.loads(adapter["adapter_config.json"])
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"  # not a local path


def test_no_local_path_is_published(trained_run, lora_run, tiny_model_dir):
    """config.yaml, run_info.json and the card name local folders and files by their last part, never their path."""
    home = str(Path(tiny_model_dir).parent)
    for run, mode in ((trained_run, "merged"), (lora_run, "adapter")):
        files = collect_files(run, mode)
        config = yaml.safe_load(files["config.yaml"])
        assert config["model"] == Path(tiny_model_dir).name and "/" not in config["output_dir"]
        assert all("/" not in str(v) for v in config["data"].values() if isinstance(v, str)), config["data"]
        assert json.loads(files["run_info.json"])["base_model"] == Path(tiny_model_dir).name
        card = str(build_model_card(run, repo_id="a/b", adapter=mode == "adapter"))
        published = b"".join(v for v in files.values() if isinstance(v, bytes)) + card.encode()
        assert home.encode() not in published and str(run).encode() not in published


def test_hub_config_section():
    base = ["data.train_file=x.csv"]
    with pytest.raises(ConfigError, match=r"hub\.repo_id"):
        load_config(None, [*base, "hub.push=true"])
    with pytest.raises(ConfigError, match=r"unknown config key 'hub\.token'"):
        load_config(None, [*base, "hub.token=hf_x"])
    config = load_config(None, [*base, "hub.push=true", "hub.repo_id=alice/m", "hub.mode=adapter"])
    assert (config.hub.repo_id, config.hub.mode, config.hub.private) == ("alice/m", "adapter", False)


def test_a_configured_push_that_cannot_happen_is_refused_before_training(tiny_model_dir, data_files, tmp_path, monkeypatch):
    """A bad repo id, no token or offline mode was found after the whole run had trained."""
    import huggingface_hub
    from huggingface_hub import constants

    from nlp_transfer.errors import UserError

    out = tmp_path / "run"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    cases = [
        ("just-a-name", r"hub\.repo_id='just-a-name': write it as OWNER/NAME"),
        ("alice/model", r"no Hugging Face token: set the HF_TOKEN"),
    ]
    for repo_id, message in cases:
        overrides = _overrides(tiny_model_dir, data_files, out, **{"hub.push": True, "hub.repo_id": repo_id})
        with pytest.raises(UserError, match=message):
            run_training(load_config(None, overrides))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set: pushing needs the Hub"):
        run_training(load_config(None, _overrides(tiny_model_dir, data_files, out, **{"hub.push": True, "hub.repo_id": "a/b"})))
    assert not out.exists()


def test_a_run_of_pickled_weights_is_told_why_it_is_not_pushed(tmp_path):
    from nlp_transfer.errors import UserError

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(UserError, match=r"the weights are pickled \(pytorch_model\.bin\), which push never uploads"):
        resolve_mode(tmp_path, "auto")


def test_local_refusals_before_any_request(trained_run, lora_run, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from nlp_transfer.errors import UserError
    from nlp_transfer.hub import push_run

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    config = json.loads((run / "tokenizer_config.json").read_text())
    (run / "tokenizer_config.json").write_text(json.dumps({**config, "note": TOKEN}))
    with pytest.raises(UserError, match=r"tokenizer_config\.json contains the Hugging Face token"):
        push_run(run, repo_id="alice/x", token=TOKEN)
    # with HF_HUB_OFFLINE=1 (the tests' default) a push says so instead of retrying
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        push_run(trained_run, repo_id="alice/x", token=TOKEN)
    adapter_only = tmp_path / "adapter-only"
    shutil.copytree(lora_run / "adapter", adapter_only / "adapter")
    assert resolve_mode(adapter_only, "auto") == "adapter"
    with pytest.raises(UserError, match="push the adapter with --adapter"):
        resolve_mode(adapter_only, "merged")


def test_the_card_lists_only_the_transfer_settings_its_strategy_reads(trained_run, lora_run):
    """A full fine-tuning card showed LoRA ranks and contrastive settings the run never used."""
    full = build_model_card(trained_run, repo_id="a/b").text
    assert "training.learning_rate" in full and "transfer.pooling" in full
    assert "transfer.lora_r" not in full and "transfer.contrastive_pairs" not in full and "transfer.unfreeze_every" not in full
    lora = build_model_card(lora_run, repo_id="a/b", adapter=True).text
    assert "transfer.lora_r" in lora and "transfer.contrastive_pairs" not in lora
    # read from the strategies themselves (own_options, class flags): lora reads neither pooling nor layer-wise decay
    assert "transfer.layer_lr_decay" in full and "transfer.freeze_pooler" not in full
    assert "transfer.pooling" not in lora and "transfer.layer_lr_decay" not in lora


def test_only_path_settings_are_cut_labels_that_look_like_paths_are_published_as_they_are():
    """Cutting every string that began with '/' or '~' renamed labels such as "/Sports/Soccer", turned a '~' separator
    into the home folder's name, and crashed on "~music" (no such user)."""
    from nlp_transfer.hub.files import without_local_paths

    config = {
        "model": "/home/me/models/tiny",
        "output_dir": "~/runs/cat",
        "data": {
            "labels": ["/Arts & Entertainment/Music", "~music", "C:/x"],
            "label_separator": "~",
            "train_file": "data/d/t.csv",
        },
        "self_training": {"rounds": [{"dir": "/home/me/runs/cat/self_training/round_0"}]},
    }
    public = without_local_paths(config)
    assert public["data"]["labels"] == config["data"]["labels"] and public["data"]["label_separator"] == "~"
    assert (public["model"], public["output_dir"], public["data"]["train_file"]) == ("tiny", "cat", "t.csv")
    assert public["self_training"]["rounds"][0]["dir"] == "round_0"


def test_a_multilabel_adapter_cards_snippet_scores_every_label_with_a_sigmoid(tiny_model_dir, tmp_path):
    """The adapter card gave no problem_type nor sigmoid: its snippet returned a softmax and one label per text."""
    import re

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.hub.usage import _adapter_usage
    from nlp_transfer.run_info import RunInfo

    labels = ["bad", "good", "late"]
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=3, problem_type="multi_label_classification"
    )
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query", "value"]))
    model.save_pretrained(tmp_path / "repo")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "repo")
    info = RunInfo(task="multilabel", strategy="lora", base_model=tiny_model_dir, labels=labels)
    card = _adapter_usage(str(tmp_path / "repo"), info, "text-classification")
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    code = code.replace(json.dumps(Path(tiny_model_dir).name), json.dumps(tiny_model_dir))  # a local base: its name only
    scope: dict = {}
    exec(code, scope)
    [scores] = scope["classifier"](["the food was late"])
    assert sorted(s["label"] for s in scores) == labels  # every label, not the top one
    assert sum(s["score"] for s in scores) != pytest.approx(1.0)  # sigmoids, not a softmax
    ner = _adapter_usage("alice/tagger", RunInfo(task="ner", labels=["O", "B-PER"]), "token-classification")
    assert 'aggregation_strategy="first"' in ner


def test_a_run_of_a_task_added_outside_the_package_is_not_pushed_with_a_wrong_card(tmp_path):
    """Its card tagged it text-classification and told readers to load it with predict, which refuses it."""
    from nlp_transfer.errors import UserError
    from nlp_transfer.hub.push import _prepare_push

    run = tmp_path / "run"
    run.mkdir()
    (run / "run_info.json").write_text(json.dumps({"task": "toy_regression", "strategy": "full"}), encoding="utf-8")
    with pytest.raises(UserError, match="a run of task=toy_regression; push writes cards for classification"):
        _prepare_push(run, "alice/scores", "auto", None)


def test_the_card_says_what_trained_by_the_end_and_which_modules_a_default_adapted(tmp_path):
    """gradual_unfreezing's card gave the head-only count of its first phase; a LoRA run on the model type's default
    targets showed `transfer.lora_target_modules | None`."""
    from nlp_transfer.hub.card import build_model_card

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    info = {"task": "classification", "strategy": "gradual_unfreezing", "labels": ["a", "b"]}
    info |= {"trainable_parameters": 100, "total_parameters": 1000, "trainable_parameters_last_epoch": 400}
    (run / "run_info.json").write_text(json.dumps(info), encoding="utf-8")
    card = str(build_model_card(run, repo_id="alice/x"))
    assert "100 of 1,000 parameters trained at the start, 400 (40.00 %) at the end" in card
    (run / "config.yaml").write_text("strategy: lora\ntransfer:\n  lora_target_modules: null\n", encoding="utf-8")
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"target_modules": ["value", "query"]}))
    info |= {"strategy": "lora", "trainable_parameters_last_epoch": 0}
    (run / "run_info.json").write_text(json.dumps(info), encoding="utf-8")
    card = str(build_model_card(run, repo_id="alice/x"))
    assert "| `transfer.lora_target_modules` | default: ['query', 'value'] |" in card and "trained (10.00 %)" in card


def test_the_cards_check_figures_name_the_scored_file_without_its_folder(tmp_path):
    """`check --data /home/me/test.csv` put that path on the card; every local path in those lines is cut to its name."""
    from nlp_transfer.hub.card import _checked_figures

    (tmp_path / "check").mkdir()
    calibration = {"ece": 0.05, "ece_after_temperature": 0.03, "temperature": 1.2}
    report = {
        "scored_on": f"{tmp_path}/private/test.csv (60 rows)", "fitted_on": "10% of ../data/train.tsv (seed 42)",
        "calibration": calibration, "selective": {"accuracy_at_80": 0.9, "accuracy_at_90": 0.85},
    }  # fmt: skip
    (tmp_path / "check" / "check.json").write_text(json.dumps(report), encoding="utf-8")
    line = _checked_figures(tmp_path)[0]
    assert "on test.csv (60 rows)" in line and "fitted on 10% of train.tsv (seed 42)" in line and str(tmp_path) not in line
    report["scored_on"] = r"C:\Users\me\data\test.csv (20 rows)"  # a Windows path too
    (tmp_path / "check" / "check.json").write_text(json.dumps(report), encoding="utf-8")
    assert "on test.csv (20 rows)" in _checked_figures(tmp_path)[0]
    selective = "- Selective prediction: accuracy 0.9000 on the 80 % most confident"
    assert f"{selective} inputs, 0.8500 on 90 %." in _checked_figures(tmp_path)
    # a multi-label run's figures count label decisions: the card called them inputs, beside a lower subset accuracy
    report["selective"]["unit"] = "label decision"
    (tmp_path / "check" / "check.json").write_text(json.dumps(report), encoding="utf-8")
    assert f"{selective} label decisions (each label of each text), 0.8500 on 90 %." in _checked_figures(tmp_path)


def test_the_cards_pipeline_snippet_cuts_texts_where_the_run_does(trained_run):
    """The pipeline cut nothing: a text past max_length scored otherwise than predict, and past 512 tokens it failed."""
    import re

    from nlp_transfer import predict
    from nlp_transfer.hub.usage import _model_usage
    from nlp_transfer.run_info import RunInfo

    info = RunInfo.read(trained_run)
    card = _model_usage("alice/model", info, "text-classification")
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1).replace('"alice/model"', repr(str(trained_run)))
    scope: dict = {}
    exec(code.split("classifier(")[0], scope)
    text = " ".join(["the staff were lovely but the room was dirty"] * 80)  # about 720 tokens
    [piped] = scope["classifier"]([text])
    [expected] = predict(trained_run, [text])
    assert piped["label"] == expected["label"] and piped["score"] == pytest.approx(expected["score"], abs=1e-5)
