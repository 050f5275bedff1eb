"""Loading a saved run refuses what could run code: the adapter of an adapter-only run (transfer.save_merged=false)
loads from safetensors only unless allow_pickle, and an adapter file that cannot be read is one line, not a traceback."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlp_transfer.cli import main
from nlp_transfer.config import TransferConfig
from nlp_transfer.errors import UserError
from nlp_transfer.inference import load_run, text_logits
from nlp_transfer.transfer.peft_adapters import ADAPTER_DIR, add_adapters, save_adapter_model

TEXTS = ["a superb and lovely film", "dreadful boring plot"]


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> Path:
    """An adapter-only LoRA run of the tiny model: config, tokenizer and RUN_DIR/adapter, no merged weights."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = tmp_path_factory.mktemp("adapter-only") / "run"
    torch.manual_seed(0)
    labels = {0: "negative", 1: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, id2label=labels, label2id={name: i for i, name in labels.items()}
    )
    options = TransferConfig(save_merged=False)
    adapted = add_adapters(model, options)
    with torch.no_grad():  # trained adapters are not zero: make the merge change the logits
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    assert save_adapter_model(adapted, run, options)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run)
    assert not list(run.glob("*.safetensors")) and (run / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    return run


def copy_run(run: Path, target: Path) -> Path:
    """A copy of ``run`` at ``target``, to damage or convert."""
    shutil.copytree(run, target)
    return target


def as_pickled_adapter(run: Path) -> Path:
    """Replace the run's adapter_model.safetensors by the same tensors in a pickle (adapter_model.bin)."""
    adapter = run / ADAPTER_DIR
    torch.save(load_file(adapter / "adapter_model.safetensors"), adapter / "adapter_model.bin")
    (adapter / "adapter_model.safetensors").unlink()
    return adapter / "adapter_model.bin"


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str], *parts: str) -> str:
    """Run the CLI with ``argv``: exit code 2 and one ``error:`` line holding each of ``parts``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err
    return err


def test_a_pickled_adapter_is_refused_without_allow_pickle_and_loads_with_it(adapter_run, tmp_path, capsys):
    """A pickled adapter_model.bin loaded without --allow-pickle (the pickle check skipped adapter-only runs)."""
    run = copy_run(adapter_run, tmp_path / "pickled")
    pickled = as_pickled_adapter(run)
    one_error(capsys, ["predict", str(run), TEXTS[0]], str(pickled), "--allow-pickle")
    with pytest.raises(UserError, match=r"adapter_model\.bin: pickle-based adapter weights"):
        load_run(run, device="cpu")
    model, task = load_run(run, device="cpu", allow_pickle=True)
    reference_model, reference_task = load_run(adapter_run, device="cpu")
    expected = text_logits(reference_model, reference_task, TEXTS)
    assert torch.allclose(torch.from_numpy(text_logits(model, task, TEXTS)), torch.from_numpy(expected), atol=1e-5)
    assert main(["predict", str(run), TEXTS[0], "--allow-pickle"]) == 0


class _Planted:
    """Unpickled, it would create a marker file: proof that the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


def test_a_pickle_holding_code_is_one_line_and_runs_nothing(adapter_run, tmp_path, capsys):
    """torch's weights-only unpickler refused it, but the UnpicklingError came out as a traceback."""
    run = copy_run(adapter_run, tmp_path / "planted")
    pickled = as_pickled_adapter(run)
    marker = tmp_path / "code-ran"
    pickled.write_bytes(pickle.dumps({"x": _Planted(marker)}, protocol=4))
    one_error(capsys, ["predict", str(run), TEXTS[0]], "--allow-pickle")  # refused before anything is read
    one_error(capsys, ["predict", str(run), TEXTS[0], "--allow-pickle"], str(pickled), "more than tensors")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("safetensors", "the adapter weights cannot be loaded"),
        ("bin", "the adapter weights cannot be loaded"),
        ("missing", "no adapter weights"),
    ],
)
def test_a_damaged_or_missing_adapter_file_is_one_line(adapter_run, tmp_path, capsys, damage, message):
    """A damaged adapter file ended in the reader's traceback; a missing one sent peft looking on the Hub."""
    run = copy_run(adapter_run, tmp_path / damage)
    weights = run / ADAPTER_DIR / "adapter_model.safetensors"
    if damage == "safetensors":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "bin":
        weights = as_pickled_adapter(run)
        weights.write_bytes(weights.read_bytes()[:200])
    else:
        weights.unlink()
        weights = run / ADAPTER_DIR
    one_error(capsys, ["predict", str(run), TEXTS[0], "--allow-pickle"], str(weights), message)
