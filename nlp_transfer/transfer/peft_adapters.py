"""Parameter-efficient fine-tuning with peft: LoRA, DoRA and IA3 adapters plus a trained task head.

The head (classifier, and the pooler of BERT-like models) trains fully and is saved with the
adapter through peft's ``modules_to_save``: an adapter loaded onto the base model gets the trained
head back, not the random one ``from_pretrained`` initialises. With ``lora_pooler: adapt`` the
pooler gets a low-rank update instead and only the classifier is saved whole.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from torch import nn

from nlp_transfer.config import TransferConfig
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.transfer.layers import find_encoder_parts

ADAPTER_DIR = "adapter"

#: LoRA / DoRA target modules by ``config.model_type`` (attention query and value projections).
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "camembert": ["query", "value"],
    "deberta": ["in_proj"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
}

#: IA3 (target modules, feed-forward modules) by ``config.model_type``: keys, values and the FFN output layer.
IA3_TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "bert": (["key", "value", "output.dense"], ["output.dense"]),
    "roberta": (["key", "value", "output.dense"], ["output.dense"]),
    "xlm-roberta": (["key", "value", "output.dense"], ["output.dense"]),
    "electra": (["key", "value", "output.dense"], ["output.dense"]),
    "camembert": (["key", "value", "output.dense"], ["output.dense"]),
    "deberta-v2": (["key_proj", "value_proj", "output.dense"], ["output.dense"]),
    "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
}


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` wrapper."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def head_modules(model: nn.Module) -> list[str]:
    """Names of the modules that make up the task head: the classifier(s) and the encoder's pooler, if any."""
    parts = find_encoder_parts(model)
    prefix = model.base_model_prefix + "."
    names: list[str] = []
    for param in parts.head:
        if param.startswith(prefix):  # the pooler inside the encoder
            module = param[len(prefix) :].split(".")[0]
        else:
            module = param.split(".")[0]
        if module not in names:
            names.append(module)
    return names


def _pooler_linears(model: nn.Module) -> list[str]:
    """Full names of the linear layers of the pooler that :func:`head_modules` finds (BERT's, DeBERTa's)."""
    prefix = model.base_model_prefix + "."
    modules = {n.rsplit(".", 1)[0] for n in find_encoder_parts(model).head if n.removeprefix(prefix).startswith("pooler.")}
    return sorted(name for name in modules if isinstance(model.get_submodule(name), nn.Linear))


def _task_type(model: nn.Module) -> Any:
    from peft import TaskType

    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return TaskType.SEQ_CLS
    if name.endswith("ForTokenClassification"):
        return TaskType.TOKEN_CLS
    return None


def peft_config_for(model: nn.Module, options: TransferConfig) -> Any:
    """The peft config (LoRA, DoRA or IA3) for ``model`` as ``options`` say, with the head in ``modules_to_save``."""
    from peft import IA3Config, LoraConfig

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if options.lora_r < 1:
        raise ConfigError(f"transfer.lora_r must be at least 1, got {options.lora_r}.")
    if not 0 <= options.lora_dropout < 1:
        raise ConfigError(f"transfer.lora_dropout must be in [0, 1), got {options.lora_dropout}.")
    head = head_modules(model)
    pooler_targets: list[str] = []
    if options.lora_pooler == "adapt":
        if options.peft_method == "ia3":
            raise ConfigError(
                "transfer.lora_pooler=adapt is for LoRA and DoRA; IA3 trains the pooler in full (lora_pooler=train)."
            )
        pooler_targets = _pooler_linears(model)
        if not pooler_targets:
            what = (
                "a token-classification model has no pooler (its head reads every token's state)"
                if type(model).__name__.endswith("ForTokenClassification")
                else f"model type '{model_type}' has no pooler with a linear layer"
            )
            raise ConfigError(f"transfer.lora_pooler=adapt: {what}; set transfer.lora_pooler=train.")
        head = [name for name in head if name != "pooler"]
    common = {"task_type": _task_type(model), "modules_to_save": head}
    targets = options.lora_target_modules
    if options.peft_method == "ia3":
        if targets is None:
            if model_type not in IA3_TARGETS:
                raise UserError(
                    f"IA3 has no default target modules for model type '{model_type}'. "
                    "Set transfer.lora_target_modules=[...] (module names of the attention/FFN linears)."
                )
            targets, feedforward = IA3_TARGETS[model_type]
        else:
            feedforward = []
        return IA3Config(target_modules=list(targets), feedforward_modules=list(feedforward), **common)
    if targets is None:
        if model_type not in LORA_TARGETS:
            raise UserError(
                f"LoRA has no default target modules for model type '{model_type}'. "
                "Set transfer.lora_target_modules=[...] (e.g. the attention query and value linears)."
            )
        targets = LORA_TARGETS[model_type]
    return LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=list(targets) + pooler_targets,
        use_dora=options.peft_method == "dora",
        bias="none",
        **common,
    )


def add_adapters(model: nn.Module, options: TransferConfig) -> nn.Module:
    """Wrap ``model`` in a ``PeftModel`` with fresh adapters; only adapters and head train.

    The adapters are injected into ``model`` in place, so ``model`` itself trains them too.
    """
    from peft import get_peft_model

    if is_peft_model(model):
        return model
    config = peft_config_for(model, options)
    check_targets_exist(model, options.lora_target_modules, head=list(config.modules_to_save or []))
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise UserError(f"{options.peft_method} adapters: {str(err).rstrip('.')}. Check transfer.lora_target_modules.") from None


def check_targets_exist(model: nn.Module, targets: Sequence[str] | None, head: Sequence[str] = ()) -> None:
    """Refuse a ``transfer.lora_target_modules`` name that matches no module of ``model`` (peft refuses only a list
    none of whose names match: a misspelt name beside a right one was dropped silently), or only modules of the
    ``head`` (``modules_to_save``, trained in full: peft refused that in words of its own)."""
    if not targets:
        return

    def in_head(name: str) -> bool:
        return any(part in head for part in name.split("."))

    every = [name for name, _ in model.named_modules()]
    names = [name for name in every if not in_head(name)]
    for target in targets:
        if not any(name == target or name.endswith(f".{target}") for name in names):
            in_the_head = any(name == target or name.endswith(f".{target}") for name in every)
            linear = sorted(
                {
                    name.rsplit(".", 1)[-1]
                    for name, module in model.named_modules()
                    if isinstance(module, nn.Linear) and not in_head(name)
                }
            )
            head_note = f" ('{target}' is part of the head, {', '.join(head)}, which trains in full)" if in_the_head else ""
            if in_the_head and "pooler" in target:
                head_note += "; transfer.lora_pooler=adapt puts adapters on the pooler"
            raise ConfigError(
                f"transfer.lora_target_modules: '{target}' names no encoder module of this model{head_note}; its linear "
                f"layers are named {', '.join(linear[:16])}."
            )


def save_adapter_model(model: nn.Module, output_dir: str | Path, options: TransferConfig | None = None) -> bool:
    """Save a run's model: a ``PeftModel`` writes RUN_DIR/adapter and (``save_merged``) a merged plain model.

    Returns False (and writes nothing) for a model without adapters. The merge happens in place:
    ``model`` is left holding merged weights.
    """
    options = options or TransferConfig()
    if not is_peft_model(model):
        return False
    output_dir = Path(output_dir)
    model.save_pretrained(str(output_dir / ADAPTER_DIR), safe_serialization=True)
    if options.save_merged:
        merge_adapters(model).save_pretrained(output_dir, safe_serialization=True)
    else:  # the model's config (labels, architecture) without weights: load_adapter_run rebuilds the model
        base = model.get_base_model()
        base.config.architectures = [type(base).__name__]
        base.config.save_pretrained(output_dir)
    return True


def is_adapter_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds an adapter but no merged weights (a run saved with ``save_merged: false``)."""
    run_dir = Path(run_dir)
    has_weights = any(run_dir.glob("*.safetensors")) or any(run_dir.glob("*.bin"))
    return not has_weights and (run_dir / ADAPTER_DIR / "adapter_config.json").is_file()


#: the adapter weights peft writes: safetensors, or (older runs, other tools) a pickle
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"


def adapter_weights_file(run_dir: str | Path, *, allow_pickle: bool = False) -> Path:
    """The adapter weights file of an adapter-only run, refused when it is a pickle and ``allow_pickle`` is off.

    peft loads ``adapter_model.bin`` when there is no safetensors file; unpickling it can run code, so it is loaded
    only as the model weights are: on ``allow_pickle``.
    """
    adapter = Path(run_dir) / ADAPTER_DIR
    if (adapter / ADAPTER_SAFETENSORS).is_file():
        return adapter / ADAPTER_SAFETENSORS
    pickled = adapter / ADAPTER_PICKLE
    if not pickled.is_file():
        raise UserError(f"{adapter}: no adapter weights (no {ADAPTER_SAFETENSORS}); the run is incomplete. Train it again.")
    if not allow_pickle:
        raise UserError(
            f"{pickled}: pickle-based adapter weights and no {ADAPTER_SAFETENSORS}. Unpickling can run code when loaded; "
            "pass --allow-pickle (allow_pickle=True) only if you trust where the run came from."
        )
    return pickled


def load_adapter_run(
    run_dir: str | Path, auto_class: Any, *, trust_remote_code: bool = False, allow_pickle: bool = False
) -> nn.Module:
    """The model of an adapter-only run: its base model (from run_info.json, else adapter_config.json) with
    the run's config (labels), the adapter loaded with peft and merged in.

    The adapter weights load from safetensors unless ``allow_pickle`` (:func:`adapter_weights_file`); a file that
    cannot be read (damaged, or a pickle holding more than tensors) is a UserError naming it.
    """
    import json

    from peft import PeftModel
    from transformers import AutoConfig

    from nlp_transfer.models import resolve_model

    run_dir = Path(run_dir)
    weights = adapter_weights_file(run_dir, allow_pickle=allow_pickle)
    info_file = run_dir / "run_info.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    adapter_config = json.loads((run_dir / ADAPTER_DIR / "adapter_config.json").read_text(encoding="utf-8"))
    base_name = info.get("base_model") or adapter_config.get("base_model_name_or_path")
    if not base_name:
        raise UserError(f"{run_dir}: adapter-only run without a recorded base model; load it with peft on its base model.")
    config = AutoConfig.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    base = auto_class.from_pretrained(
        resolve_model(base_name).path, config=config, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol would come before the error, a second line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            adapted = PeftModel.from_pretrained(base, str(run_dir / ADAPTER_DIR))
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        raise unreadable_adapter(weights, err) from None
    return merge_adapters(adapted)


def unreadable_adapter(weights: Path, err: BaseException) -> UserError:
    """The one-line error for adapter ``weights`` that peft could not load: a pickle torch refused to unpickle (it holds
    more than tensors), or a damaged or mismatched file."""
    if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
        return UserError(
            f"{weights}: the pickle holds more than tensors (Python objects that unpickling would build or run), so it "
            "is refused with --allow-pickle or without. Do not load this run anywhere; train it again."
        )
    first_line = (str(err).strip().splitlines() or [""])[0][:160]
    return UserError(
        f"{weights}: the adapter weights cannot be loaded ({type(err).__name__}: {first_line}). "
        "Copy the run again from where it was trained, or train it again."
    )


def merge_adapters(model: nn.Module) -> nn.Module:
    """The plain transformers model of a ``PeftModel``: adapters merged into the weights, trained head in place.

    The head copies in ``modules_to_save`` are put back first (peft's IA3 unload cannot replace a
    module without a ``weight``, such as BERT's pooler), then peft merges the adapter layers.
    """
    from peft.utils import ModulesToSaveWrapper

    base = model.get_base_model()
    adapter = model.active_adapter
    for name, module in list(base.named_modules()):
        if isinstance(module, ModulesToSaveWrapper):
            parent_name, _, child = name.rpartition(".")
            parent = base.get_submodule(parent_name) if parent_name else base
            setattr(parent, child, module.modules_to_save[adapter])
    return model.merge_and_unload()
