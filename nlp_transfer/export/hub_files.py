"""What ``push --onnx`` adds to a push: the export folder, and a card section on running it with onnxruntime alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError
from nlp_transfer.export.onnx_backend import EXPORT_DIR, INFO_FILE, check_export_of_run, export_info
from nlp_transfer.hub.files import file_inside
from nlp_transfer.run_info import RunInfo


def onnx_push_files(run_dir: Path) -> dict[str, Path]:
    """``onnx/<file>`` -> local path for the export's model file(s) and ``export.json``; a UserError without an export,
    or when a file it lists is no plain name or leads (through a symbolic link) out of RUN_DIR/onnx."""
    folder = run_dir / EXPORT_DIR
    if not (folder / INFO_FILE).is_file():
        raise UserError(
            f"{run_dir}: no ONNX export to push ({folder / INFO_FILE} is missing). Run nlp-transfer export {run_dir} first."
        )
    root = run_dir.resolve() / EXPORT_DIR  # its own link out of the run folder is refused too
    files = {f"{EXPORT_DIR}/{INFO_FILE}": file_inside(folder / INFO_FILE, root)}
    info = export_info(folder)
    check_export_of_run(run_dir, folder, info, RunInfo.read(run_dir).labels)
    for name in _listed_files(folder, info):
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: listed in {INFO_FILE} but missing. Export the run again.")
        files[f"{EXPORT_DIR}/{name}"] = file_inside(folder / name, root)
    return files


def _listed_files(folder: Path, info: dict[str, Any]) -> list[str]:
    """The file names ``export.json`` lists (``files``, else ``model_file``): each must be a plain name of a file in
    ``folder`` (no folder part, no absolute path, no ``..``), as nlp-transfer export writes them."""
    names = info.get("files") or [info["model_file"]]
    if not isinstance(names, list):
        names = [names]
    for name in [*names, info["model_file"]]:
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise UserError(
                f"{folder / INFO_FILE}: lists {name!r}, which is no plain file name inside {folder}; push uploads only "
                f"the export's own files. Export the run again: nlp-transfer export {folder.parent}"
            )
    return names


def _pad_token(run_dir: Path) -> str:
    """The tokenizer's padding token (from tokenizer_config.json; ``[PAD]`` when it names none)."""
    path = run_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    token = config.get("pad_token")
    token = token.get("content") if isinstance(token, dict) else token
    return str(token or "[PAD]")


def _decision_lines(info: dict[str, Any], temperature: float, threshold: float) -> str:
    """The snippet's last lines: labels from logits as nlp-transfer decides them for the task."""
    if info.get("task") == "ner":
        return (
            "for encoding, row in zip(encodings, logits.argmax(-1)):  # a tag per token ([CLS], [SEP], padding included)\n"
            "    print([(token, labels[tag]) for token, tag in zip(encoding.tokens, row) if token not in ('[CLS]', '[SEP]', '[PAD]')])\n"
        )
    if info.get("task") == "multilabel":
        return (
            "scores = 1 / (1 + np.exp(-logits))\n"
            f"print([[labels[j] for j in np.flatnonzero(row >= {threshold})] for row in scores])\n"
        )
    return (
        f"scores = np.exp(logits / {temperature})  # the temperature nlp-transfer check fitted (1.0: none)\n"
        "scores /= scores.sum(-1, keepdims=True)\n"
        "print([labels[i] for i in scores.argmax(-1)])\n"
    )


def onnx_card_section(run_dir: Path, repo_id: str) -> str:
    """Markdown: how to run the pushed export with onnxruntime, ``tokenizers`` and numpy (no torch, no transformers)."""
    from nlp_transfer.inference import read_temperature

    info = export_info(run_dir / EXPORT_DIR)
    run = RunInfo.read(run_dir)
    threshold = 0.5 if run.threshold is None else run.threshold
    example = "Hugging Face released a new library in Paris." if info.get("task") == "ner" else "The staff were lovely."
    check = info["checks"][info["model_file"]]
    return (
        "\n## ONNX\n\n"
        f"`{EXPORT_DIR}/{info['model_file']}` is the model exported with `nlp-transfer export`"
        f"{' and quantized to int8' if info.get('int8') else ''}; on {info.get('checked_on', 'the validation split')} its "
        f"labels agree with the PyTorch model's on {100 * check['label_agreement']:.2f} % of the decisions "
        f"({check['metric']} {check['before']:.4f} -> {check['after']:.4f}). "
        "It runs with onnxruntime alone (`pip install onnxruntime tokenizers numpy huggingface_hub`):\n\n"
        "```python\n"
        "import numpy as np\n"
        "import onnxruntime as ort\n"
        "from huggingface_hub import hf_hub_download\n"
        "from tokenizers import Tokenizer\n\n"
        f"session = ort.InferenceSession(hf_hub_download({json.dumps(repo_id)}, {json.dumps(EXPORT_DIR + '/' + info['model_file'])}))\n"
        f"tokenizer = Tokenizer.from_file(hf_hub_download({json.dumps(repo_id)}, 'tokenizer.json'))\n"
        f"tokenizer.enable_truncation(max_length={int(info.get('max_length') or 512)})\n"
        f"tokenizer.enable_padding(pad_id=tokenizer.token_to_id({json.dumps(_pad_token(run_dir))}))\n"
        f"labels = {json.dumps(info['labels'])}\n\n"
        f"encodings = tokenizer.encode_batch([{json.dumps(example)}])\n"
        "columns = {'input_ids': [e.ids for e in encodings], 'attention_mask': [e.attention_mask for e in encodings],\n"
        "           'token_type_ids': [e.type_ids for e in encodings]}\n"
        "feeds = {i.name: np.asarray(columns[i.name], dtype=np.int64) for i in session.get_inputs()}\n"
        "logits = session.run(None, feeds)[0]\n"
        f"{_decision_lines(info, read_temperature(run_dir), threshold)}"
        "```\n"
        f"{_truncation_note(run_dir, int(info.get('max_length') or 512))}"
    )


def _truncation_note(run_dir: Path, max_length: int) -> str:
    """For a run that reads long texts as windows: the snippet above truncates them, so it may answer otherwise."""
    from nlp_transfer.tasks.windows import CONFIG_KEY

    path = run_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not config.get(CONFIG_KEY):
        return ""
    return (
        f"\nThis snippet truncates each text at {max_length} tokens. The model was trained and is served by "
        "`nlp-transfer predict` on long texts cut into overlapping windows whose scores are pooled "
        "(`training.long_text=windows`), so on texts longer than that its labels can differ from the snippet's.\n"
    )
