"""push uploads only files that lie inside the run folder, and refuses a run whose config.yaml is not safe YAML.

Planted faults: symbolic links from a run folder (or its onnx/ export) to files elsewhere on the machine, an
export.json that lists an absolute or ``..`` path, and config.yaml files with a Python tag or a syntax error. Each
push runs through the CLI against the loopback HubServer and must stop with one line, exit 2, before any request.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.hub import build_model_card, collect_files
from nlp_transfer.pipeline import run_training
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv

try:
    from hub_server import HubServer
except ModuleNotFoundError:  # tests/ is not on sys.path under some import modes
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub_server import HubServer

TOKEN = "hf_carolWriteToken0123456789abcdefXYZ"
SECRET = "PRIVATE-KEY-c0ffee-never-published"
REPO = Path(__file__).resolve().parent.parent

CLIENT = r"""
import contextlib, io, json, sys, traceback
import nlp_transfer.hub.push as push
from nlp_transfer.cli import main

push.RETRY_WAIT_SECONDS = 0.05
results = {}
for name, args in json.loads(open(sys.argv[1]).read()).items():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["push", *args])
        except BaseException:  # a crash fails its own step, not the whole run
            traceback.print_exc()
            rc = 1
    results[name] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}
print("RESULT:" + json.dumps(results))
"""

#: step -> what its one-line error says (the planted file is named in it)
REFUSALS = {
    "link_vocab": "vocab.txt: a symbolic link to",
    "link_image": "confusion_matrix_extra.png: a symbolic link to",
    "link_config": "config.yaml: a symbolic link to",
    "link_adapter": "adapter_model.safetensors: a symbolic link to",
    "onnx_absolute": "export.json: lists '/",
    "onnx_dotdot": "export.json: lists '../../secret.txt', which is no plain file name",
    "onnx_link": "model.onnx.data: a symbolic link to",
    "onnx_folder_link": "export.json: through a linked folder, it is",
    "yaml_python_tag": "config.yaml, line 1: not valid YAML (could not determine a constructor",
    "yaml_syntax": "config.yaml, line 2: not valid YAML (expected ',' or ']'",
}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A tiny finished run (no checkpoints), copied and altered by each test."""
    base = tmp_path_factory.mktemp("paths-data")
    files = {
        split: write_csv(base / f"{split}.csv", synthetic_sentiment(40, seed))
        for seed, split in enumerate(("train", "validation", "test"))
    }
    out = base / "run"
    overrides = {f"data.{split}_file": path for split, path in files.items()}
    run_training(load_config(None, tiny_overrides(tiny_model_dir, out, **overrides)))
    return out


def _copy(base_run: Path, folder: Path) -> Path:
    shutil.copytree(base_run, folder, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    return folder


def _export(run: Path, folder: Path, files: list[str]) -> None:
    """A hand-written ONNX export record (as nlp-transfer export writes it, without the weights' fingerprint)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"not really onnx, but pushed as it is")
    labels = json.loads((run / "run_info.json").read_text())["labels"]
    check = {"metric": "accuracy", "before": 0.5, "after": 0.5, "label_agreement": 1.0}
    info = {
        "model_file": "model.onnx",
        "files": files,
        "labels": labels,
        "task": "classification",
        "checks": {"model.onnx": check},
    }
    (folder / "export.json").write_text(json.dumps(info))


def _plant_links(base_run: Path, work: Path, secret: Path) -> dict[str, list[str]]:
    """Runs whose folder links to ``secret`` (outside it): step -> push arguments."""
    steps: dict[str, list[str]] = {}
    for step, name in (("link_vocab", "vocab.txt"), ("link_image", "confusion_matrix_extra.png"), ("link_config", "config.yaml")):
        run = _copy(base_run, work / step)
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(secret)
        steps[step] = [str(run), "--repo-id", f"carol/{step}"]
    run = _copy(base_run, work / "link_adapter")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x"}))
    (run / "adapter" / "adapter_model.safetensors").symlink_to(secret)
    steps["link_adapter"] = [str(run), "--repo-id", "carol/link_adapter", "--adapter"]
    return steps


def _plant_exports(base_run: Path, work: Path, secret: Path) -> dict[str, list[str]]:
    """Runs whose ONNX export lists or links to files outside RUN/onnx: step -> push arguments."""
    steps: dict[str, list[str]] = {}
    shutil.copy(secret, work / "secret.txt")
    for step, listed in (("onnx_absolute", str(secret)), ("onnx_dotdot", "../../secret.txt"), ("onnx_link", "model.onnx.data")):
        run = _copy(base_run, work / step)
        _export(run, run / "onnx", ["model.onnx", listed])
        steps[step] = [str(run), "--repo-id", f"carol/{step}", "--onnx"]
    (work / "onnx_link" / "onnx" / "model.onnx.data").symlink_to(secret)
    run = _copy(base_run, work / "onnx_folder_link")
    _export(run, work / "elsewhere-export", ["model.onnx"])
    (run / "onnx").symlink_to(work / "elsewhere-export")
    steps["onnx_folder_link"] = [str(run), "--repo-id", "carol/onnx_folder_link", "--onnx"]
    return steps


def _plant_yaml(base_run: Path, work: Path) -> dict[str, list[str]]:
    """Runs whose config.yaml is no safe YAML: step -> push arguments."""
    steps: dict[str, list[str]] = {}
    texts = {
        "yaml_python_tag": f'model: !!python/object/apply:os.system ["touch {work}/PWNED"]\n',
        "yaml_syntax": "model: [unclosed\n",
    }
    for step, text in texts.items():
        run = _copy(base_run, work / step)
        (run / "config.yaml").write_text(text)
        steps[step] = [str(run), "--repo-id", f"carol/{step}"]
    return steps


def _plant_allowed(base_run: Path, work: Path) -> dict[str, list[str]]:
    """A run whose links stay inside its folder (allowed), with an export: step -> push arguments."""
    run = _copy(base_run, work / "inside_links")
    (run / "extra").mkdir()
    (run / "extra" / "vocab_source.txt").write_text("[PAD]\nhello\n")
    (run / "vocab.txt").unlink(missing_ok=True)
    (run / "vocab.txt").symlink_to(Path("extra") / "vocab_source.txt")
    _export(run, run / "onnx", ["model.onnx"])
    (run / "onnx" / "model.onnx").rename(run / "onnx" / "graph.bin")
    (run / "onnx" / "model.onnx").symlink_to("graph.bin")
    return {"inside_links": [str(run), "--repo-id", "carol/inside_links", "--onnx"]}


@pytest.fixture(scope="module")
def pushed(base_run, tmp_path_factory):
    """Every planted run pushed once through the CLI; yields (server, results, work folder)."""
    work = tmp_path_factory.mktemp("paths-push")
    secret = work / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\n")
    steps = {
        **_plant_links(base_run, work, secret),
        **_plant_exports(base_run, work, secret),
        **_plant_yaml(base_run, work),
        **_plant_allowed(base_run, work),
    }
    (work / "steps.json").write_text(json.dumps(steps))
    with HubServer(tokens={TOKEN: "carol"}, orgs={"carol": []}) as server:
        env = {**server.client_env(token=TOKEN, hf_home=str(work / "hf_home")), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", CLIENT, str(work / "steps.json")],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\nserver: {server.errors}"
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT:"))
        yield server, json.loads(line[len("RESULT:") :]), work


@pytest.mark.parametrize("step", sorted(REFUSALS))
def test_a_push_that_would_publish_a_file_from_elsewhere_or_unsafe_yaml_stops_before_any_request(pushed, step):
    server, results, _ = pushed
    out = results[step]
    assert out["rc"] == 2, out
    assert out["stderr"].startswith("error: ") and out["stderr"].count("\n") == 1, out["stderr"]
    assert REFUSALS[step] in out["stderr"], out["stderr"]
    assert f"carol/{step}" not in server.repos
    assert not any(step in request.path for request in server.request_log)


def test_no_planted_file_reached_the_hub_and_no_yaml_tag_ran(pushed):
    server, _, work = pushed
    assert server.find_leaks(SECRET) == []
    assert not (work / "PWNED").exists()


def test_links_that_stay_inside_the_run_folder_are_pushed_as_their_targets(pushed):
    """The documented choice: a link to another file of the same folder goes up under the link's name."""
    server, results, _ = pushed
    assert results["inside_links"]["rc"] == 0, results["inside_links"]
    files = server.repos["carol/inside_links"].files
    assert files["vocab.txt"] == b"[PAD]\nhello\n"
    assert files["onnx/model.onnx"] == b"not really onnx, but pushed as it is"
    assert not any(path.startswith("extra/") or path == "onnx/graph.bin" for path in files)


def test_the_card_and_the_file_list_refuse_unsafe_yaml_and_outside_links_in_process(base_run, tmp_path):
    """The library calls (not only the CLI) raise the one-line UserError."""
    run = _copy(base_run, tmp_path / "run")
    (run / "config.yaml").write_text("model: !!python/name:os.system\n")
    with pytest.raises(UserError, match=r"config\.yaml, line 1: not valid YAML"):
        build_model_card(run, repo_id="carol/x")
    with pytest.raises(UserError, match=r"config\.yaml, line 1: not valid YAML"):
        collect_files(run, "merged")
    (run / "config.yaml").write_bytes(b"model: \xff\xfe\n")
    with pytest.raises(UserError, match=r"config\.yaml: not UTF-8 text"):
        build_model_card(run, repo_id="carol/x")
    (run / "config.yaml").unlink()
    (run / "check").mkdir()
    (run / "check" / "check.json").symlink_to(base_run / "metrics.json")  # read into the card, so checked as well
    with pytest.raises(UserError, match=r"check\.json: a symbolic link to .*, outside"):
        collect_files(run, "merged")
    (run / "check" / "check.json").unlink()
    (run / "adapter").mkdir()  # a merged push uploads no adapter file, but the card reads its target modules
    (run / "adapter" / "adapter_config.json").symlink_to(base_run / "metrics.json")
    with pytest.raises(UserError, match=r"adapter_config\.json: a symbolic link to .*, outside"):
        collect_files(run, "merged")
