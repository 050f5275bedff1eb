"""The masked-LM model of an adaptation run: built on the encoder, trained through the loop, saved as a model folder.

An encoder saved without a masked-LM head (the default MiniLM is a plain ``BertModel``) gets one from
``AutoModelForMaskedLM``: the encoder's weights load, the decoder is the word-embedding matrix (tied),
and the head's transform is initialised as the architecture's own pretraining starts it
(``initializer_range`` normal weights, LayerNorm 1 and 0, zero output bias).

During training :class:`MaskedLMScorer` wraps it: the head runs only at the masked positions (the
decoder over the vocabulary costs as much as the whole 6-layer encoder per token), and the "logits"
the loop sees are two numbers per token, the loss and whether the top prediction was right.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoModelForMaskedLM, PreTrainedModel

from nlp_transfer.errors import UserError
from nlp_transfer.models import load_pretrained

HEAD_ATTRIBUTES = ("cls", "lm_head")  # BERT-likes, RoBERTa-likes: modules that map hidden states to vocabulary logits


def build_masked_lm(path: str, name: str, *, allow_pickle: bool, trust_remote_code: bool) -> tuple[PreTrainedModel, list[str]]:
    """``AutoModelForMaskedLM`` on the encoder at ``path``, decoder tied; also the head weights it had to initialise.

    Refuses a model whose encoder weights did not load (only head weights may be new).
    """
    kwargs = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code, "tie_word_embeddings": True}
    try:
        model, info = load_pretrained(AutoModelForMaskedLM, path, output_loading_info=True, **kwargs)
    except ValueError as err:
        raise UserError(f"model '{name}': no masked-LM version of this architecture ({str(err)[:160]}).") from None
    new = sorted(info.get("missing_keys") or [])
    prefix = model.base_model_prefix
    encoder_missing = [key for key in new if key.startswith(f"{prefix}.") or "embeddings" in key]
    if encoder_missing:
        raise UserError(f"model '{name}': encoder weights missing from the checkpoint ({', '.join(encoder_missing[:3])}).")
    if not tied(model):
        raise UserError(f"model '{name}': its masked-LM decoder cannot be tied to the word embeddings.")
    return model, new


def train_head_only(model: PreTrainedModel) -> None:
    """Freeze the encoder (and so the decoder tied to its word embeddings): only the masked-LM head's own weights learn.

    The first step for a model that ships without a head (``strategy=frozen``): the new head fits the encoder as it
    is, so a later whole-model run starts from a trained head rather than sending a random one's gradients into the
    encoder.
    """
    for parameter in model.base_model.parameters():
        parameter.requires_grad_(False)


def tied(model: PreTrainedModel) -> bool:
    """Whether the output (decoder) weights are the input word embeddings themselves."""
    output = model.get_output_embeddings()
    return output is not None and output.weight is model.get_input_embeddings().weight


class MaskedLMScorer(nn.Module):
    """The masked-LM model as the loop trains it: per token [loss, top-1 correct] at masked positions, 0 elsewhere."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        # the name, not the module: registering it twice would store its weights twice in every checkpoint
        self.head_name = next((a for a in HEAD_ATTRIBUTES if isinstance(getattr(model, a, None), nn.Module)), None)

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Delegate ``training.gradient_checkpointing`` to the model."""
        self.model.gradient_checkpointing_enable(**kwargs)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor, **inputs: torch.Tensor) -> SimpleNamespace:
        """Scores of the masked positions (``targets`` != -100); ``.logits`` has shape (batch, length, 2)."""
        selected = targets != -100
        if self.head_name is not None:
            hidden = self.model.base_model(input_ids=input_ids, **inputs)[0]
            logits = getattr(self.model, self.head_name)(hidden[selected])
        else:  # an architecture whose head is not one module: score every position, keep the masked ones
            logits = self.model(input_ids=input_ids, **inputs).logits[selected]
        gold = targets[selected]
        loss = nn.functional.cross_entropy(logits.float(), gold, reduction="none")
        correct = (logits.detach().argmax(-1) == gold).float()
        zeros = torch.zeros(selected.shape, device=loss.device, dtype=loss.dtype)
        scores = torch.stack([zeros.masked_scatter(selected, loss), zeros.masked_scatter(selected, correct)], dim=-1)
        return SimpleNamespace(logits=scores)


def base_weights_to_keep(
    path: str, model: PreTrainedModel, *, allow_pickle: bool, trust_remote_code: bool
) -> dict[str, torch.Tensor]:
    """Weights of the original encoder that the masked-LM model has no place for (BERT's pooler).

    Saved beside the adapted weights, so ``AutoModel`` (and a classifier built on the folder) gets the
    original pooler rather than a random one. Weights the original checkpoint did not have are left out.
    """
    kwargs = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
    encoder, info = load_pretrained(AutoModel, path, output_loading_info=True, **kwargs)
    missing = set(info.get("missing_keys") or [])
    prefix, present = model.base_model_prefix, set(model.state_dict())
    kept = {}
    for key, value in encoder.state_dict().items():
        name = f"{prefix}.{key}"
        if key not in missing and name not in present:
            kept[name] = value.detach().clone()
    return kept


def save_adapted(model: PreTrainedModel, output_dir: Path, extra: dict[str, torch.Tensor]) -> None:
    """``save_pretrained`` of the masked-LM model (safetensors, tied decoder stored once) plus ``extra`` weights."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    state.update({key: value.cpu() for key, value in extra.items()})
    model.save_pretrained(output_dir, state_dict=state, safe_serialization=True)
