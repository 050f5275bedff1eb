"""Which files of a run directory go to the Hub, and the copies of its config and run_info cleaned for it."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from nlp_transfer.errors import HUB_TOKEN_RE, UserError

REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


SECRET_KEY_RE = re.compile(r"(^|_)(token|secret|password|passwd|api_?key|credentials?)$", re.IGNORECASE)


HF_TOKEN_RE = HUB_TOKEN_RE


WEIGHT_PATTERNS = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json")


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


TOKENIZER_PATTERNS = (
    "tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt",
    "spiece.model", "sentencepiece*.model", "*.tiktoken", "chat_template*",
)  # fmt: skip


RUN_FILES = ("config.yaml", "metrics.json", "run_info.json", "confusion_matrix_*.png", "calibration.json")


#: Files of a run that the model card is written from besides those uploaded (read, so kept inside the run folder too).
CARD_SOURCES = ("config.json", "tokenizer_config.json", "check/check.json", "adapter/adapter_config.json")


#: Never uploaded: training state, pickles, editor/OS clutter, a README we replace with the card.
EXCLUDED_PATTERNS = (
    "optimizer*", "scheduler*", "rng_state*", "training_args*", "trainer_state*", "*.pt", "*.pth",
    "*.bin", "*.ckpt", "*.pkl", "*.pickle", ".*", "*~", "README.md",
)  # fmt: skip


#: Files of an earlier push that would confuse loading when left beside the new ones (e.g. an old adapter).
STALE_PATTERNS = ("adapter_config.json", "adapter_model.*", "*.safetensors", "*.safetensors.index.json", "*.bin")


#: Every top-level file a push may write: one of an earlier push that this push does not upload again is deleted.
PUSHED_PATTERNS = STALE_PATTERNS + RUN_FILES + TOKENIZER_PATTERNS + ("config.json", "generation_config.json")


class PushError(UserError):
    """The Hub refused or failed the push; the message says why and what to do."""


def read_json(path: Path) -> dict[str, Any]:
    """A run file's JSON object: {} when the file is missing or holds no object, a UserError when it is not JSON."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err}).") from None
    return data if isinstance(data, dict) else {}


def read_config_yaml(path: Path) -> Any:
    """The run's config.yaml as safe YAML (None when the file is missing); a one-line UserError naming the file and
    line when it is not valid YAML, holds a Python tag (``!!python/object``) or is not UTF-8 text."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text. Save it as UTF-8 YAML (or delete it), then push again.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise UserError(
            f"{path}{where}: not valid YAML ({problem}); push publishes it and writes the card from it. Fix it as plain "
            "YAML (no !!python tags) or delete it, then push again."
        ) from None


def file_inside(path: Path, root: Path) -> Path:
    """The real path of ``path`` (every link followed), a file that push uploads or reads: a UserError when it lies
    outside ``root``, so that a symbolic link in a run folder never publishes a file from elsewhere on the machine.

    ``root`` is compared as given: pass a resolved folder (``run_dir.resolve()``), or one below it whose own links
    must not lead out either (``run_dir.resolve() / "onnx"``). A link to another file inside ``root`` is allowed."""
    real = path.resolve()
    if real.is_relative_to(root):
        return real
    how = "a symbolic link to" if path.is_symlink() else "through a linked folder, it is"
    raise UserError(
        f"{path}: {how} {real}, outside {root}; push uploads only files that lie inside that folder. "
        "Replace the link with a copy of the file, or delete it, then push again."
    )


def matches_any(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a file name matches one of the glob ``patterns`` (case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(any(folder.glob(p)) for p in WEIGHT_PATTERNS)


def _has_adapter(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ADAPTER_FILES)


def resolve_mode(run_dir: Path, mode: str) -> Literal["merged", "adapter"]:
    """Which model the push uploads: ``auto`` takes the plain/merged model, else the adapter."""
    if mode not in ("auto", "merged", "adapter"):
        raise UserError(f"push mode {mode!r}: use auto, merged or adapter.")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory. Give the output_dir of a finished run.")
    adapter_dir = run_dir / "adapter"
    if mode == "adapter":
        if not _has_adapter(adapter_dir):
            raise UserError(
                f"{run_dir}: no LoRA adapter to push ({adapter_dir} with {' and '.join(ADAPTER_FILES)} is missing). "
                "--adapter needs a run trained with strategy=lora; push the model with --merged."
            )
        return "adapter"
    if _has_model(run_dir):
        return "merged"
    if _has_adapter(adapter_dir):
        if mode == "auto":
            return "adapter"
        raise UserError(f"{run_dir}: no merged model (transfer.save_merged was false); push the adapter with --adapter.")
    if list(run_dir.glob("pytorch_model*.bin")):  # weights there, but pickled: never uploaded
        raise UserError(
            f"{run_dir}: the weights are pickled (pytorch_model.bin), which push never uploads. Save them as safetensors "
            "(model.save_pretrained(folder, safe_serialization=True)) and push that folder."
        )
    raise UserError(
        f"{run_dir}: nothing to push: no config.json with model weights (model.safetensors). "
        "Give the output_dir of a finished run (nlp-transfer train writes them at the end)."
    )


#: keys of config.yaml and run_info.json whose values are local paths (``data.train_file: data/train.csv``,
#: ``self_training.rounds[].dir``); only these are cut: a label such as "/Sports/Soccer" is no path
PATH_KEY_RE = re.compile(r"^(output_dir|model|base_model|dir|path|.*_file|.*_dir|.*_path)$")


def file_list(value: str) -> list[str]:
    """The files of ``adapt``'s comma-separated ``data.train_file`` (``a.txt,b.tsv``), else ``[value]``: a path that
    exists, or whose comma-separated parts are not all file names with a suffix (``exp,v2/train.csv``), is one path."""
    parts = [part.strip() for part in value.split(",")]
    if len(parts) < 2 or Path(value).exists() or not all(Path(part).suffix for part in parts):
        return [value]
    return parts


def public_name(value: str) -> str:
    """``value`` fit to publish: a Hub id or a bare name as it is, a local path cut to its last part, and each path of
    a comma-separated list (``adapt``'s files) cut alike."""
    parts = file_list(value)
    if len(parts) > 1:
        return ",".join(public_name(part) for part in parts)
    if looks_like_hub_id(value) or not re.search(r"[/\\]", value):
        return value
    return Path(value.replace("\\", "/")).name or value


#: a path written inside a sentence ("on /home/me/data/test.csv (60 rows)"): after a space, "(" or the start
_PATH_IN_TEXT_RE = re.compile(r"(?<![^\s(])(?:~|\.{1,2}|[A-Za-z]:)?[/\\]?(?:[\w.@+-]+[/\\])+[\w.@+-]+")


def without_paths_in_text(text: str) -> str:
    """``text`` with each local path in it cut to its last part (:func:`public_name`); Hub ids stay."""
    return _PATH_IN_TEXT_RE.sub(lambda match: public_name(match.group(0)), text)


def without_local_paths(node: Any, key: str = "") -> Any:
    """``node`` with the values of :data:`PATH_KEY_RE` keys cut to their last part (:func:`public_name`)."""
    if isinstance(node, dict):  # a key may be a path too (adapt's file_formats: {path: format})
        return {without_paths_in_text(k) if isinstance(k, str) else k: without_local_paths(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [without_local_paths(v, key) for v in node]
    if isinstance(node, str) and PATH_KEY_RE.match(key):
        return public_name(node)
    return node


#: the first line of an uploaded config.yaml whose run pushed itself at the end of training
UPLOADED_HUB_NOTE = (
    "# hub.push and hub.repo_id are cleared in this copy: training it again pushes nowhere until you set them "
    "(hub.push=true hub.repo_id=OWNER/NAME).\n"
)


def _sanitized_config_yaml(path: Path) -> bytes | None:
    """config.yaml without any secret-looking key or token-looking value, its local paths cut to names, and its hub
    section switched off (``hub.push: false``, no ``hub.repo_id``) so that training it again pushes nowhere."""
    if not path.is_file():
        return None
    data = read_config_yaml(path)

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if not SECRET_KEY_RE.search(str(k))}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, str) and HF_TOKEN_RE.search(node):
            return "<redacted>"
        return node

    public = without_local_paths(clean(data))
    note = ""
    hub = public.get("hub") if isinstance(public, dict) else None
    if isinstance(hub, dict) and (hub.get("push") or hub.get("repo_id")):
        # `nlp-transfer train config.yaml` must train the run again, not ask for a token and push into this repository
        public["hub"] = {**hub, "push": False, "repo_id": None}
        note = UPLOADED_HUB_NOTE
    return (note + yaml.safe_dump(public, sort_keys=False)).encode("utf-8")


def _adapter_config_for_hub(path: Path, base_model: str | None) -> bytes:
    """adapter_config.json with ``base_model_name_or_path`` set to the Hub id when it names a local copy (else to the
    local folder's name: its path is never published)."""
    config = read_json(path)
    recorded = str(config.get("base_model_name_or_path") or "")
    local = recorded.startswith(("/", ".", "~")) or Path(recorded).is_dir()
    if local:
        config["base_model_name_or_path"] = base_model if base_model and looks_like_hub_id(base_model) else public_name(recorded)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _run_info_for_hub(path: Path) -> bytes:
    """run_info.json with local paths cut to file names (the data files' size and sha256 still identify them)."""
    info = read_json(path)
    for entry in (info.get("data_files") or {}).values():
        if isinstance(entry, dict) and "path" in entry:
            entry["path"] = Path(str(entry["path"])).name
    return (json.dumps(without_local_paths(info), indent=2) + "\n").encode("utf-8")  # base_model among the path keys


def looks_like_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hub repo id (``owner/name``) and is not a local path."""
    return bool(REPO_ID_RE.fullmatch(name)) and not Path(name).expanduser().exists()


def collect_files(run_dir: Path, mode: Literal["merged", "adapter"], base_model: str | None = None) -> dict[str, Path | bytes]:
    """Path in the repo -> local file or bytes, for everything the push uploads (the card excluded)."""
    files: dict[str, Path | bytes] = {}
    root = run_dir.resolve()
    for name in CARD_SOURCES:  # read into the card, uploaded or not
        if (run_dir / name).exists():
            file_inside(run_dir / name, root)
    top = sorted(p for p in run_dir.iterdir() if p.is_file() and not matches_any(p.name, EXCLUDED_PATTERNS))
    for path in top:
        keep = matches_any(path.name, RUN_FILES + TOKENIZER_PATTERNS)
        if mode == "merged":
            keep = keep or path.name == "config.json" or path.name == "generation_config.json"
            keep = keep or matches_any(path.name, WEIGHT_PATTERNS)
        if keep:  # the real path goes up: a link swapped after this check changes nothing
            files[path.name] = file_inside(path, root)
    if mode == "adapter":
        adapter_dir = run_dir / "adapter"
        for path in sorted(adapter_dir.iterdir()):
            if path.is_file() and not matches_any(path.name, EXCLUDED_PATTERNS):
                if path.name == "config.json":  # a full config beside an adapter misleads from_pretrained
                    continue
                files[path.name] = file_inside(path, root)
        files["adapter_config.json"] = _adapter_config_for_hub(adapter_dir / "adapter_config.json", base_model)
    if "run_info.json" in files:
        files["run_info.json"] = _run_info_for_hub(run_dir / "run_info.json")
    if "config.yaml" in files:
        cleaned = _sanitized_config_yaml(run_dir / "config.yaml")
        if cleaned is None:
            del files["config.yaml"]
        else:
            files["config.yaml"] = cleaned
    return files
