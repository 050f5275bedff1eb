"""What a transfer strategy is: one object that owns a run's whole training plan.

A strategy decides, in one place:

- which options it accepts (:meth:`Strategy.check`, at config time, before any model loads);
- how the model is prepared (:meth:`Strategy.prepare_model`: wrap it, inject adapters, ...);
- which parameters train and at which learning rates (:meth:`Strategy.parameter_groups`);
- what callbacks the loop calls (:meth:`Strategy.callbacks`: gradual unfreezing moves on by epoch or step);
- how training runs (:meth:`Strategy.train`: the standard loop, or encode once and train the head, or
  a phase before the head);
- how the result is saved (:meth:`Strategy.save`);
- what it adds to the run report (:meth:`Strategy.run_info`).

The base class gives the standard answer to each, so a strategy overrides only what differs.
Transfer *options* that combine with several strategies (``transfer.case_vocab``) are
:class:`TransferExtension` objects the strategy holds and consults at the same points.

Register a strategy with :func:`register_strategy`; ``strategy: NAME`` in a config then selects it.
``pipeline.py`` and ``training/`` never name a strategy.
"""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from nlp_transfer.config import RunConfig, TransferConfig, config_to_dict
from nlp_transfer.errors import ConfigError
from nlp_transfer.training.callbacks import TrainingCallback
from nlp_transfer.transfer.groups import ParamGroups

if TYPE_CHECKING:
    import datasets
    from accelerate import Accelerator

    from nlp_transfer.training.loop import FitResult


@dataclass
class TrainingRun:
    """Everything a strategy's :meth:`Strategy.train` needs to train: the prepared pieces of one run."""

    model: nn.Module
    task: Any
    param_groups: ParamGroups
    splits: dict[str, datasets.Dataset]
    config: RunConfig
    accelerator: Accelerator
    output_dir: Path
    resume: bool = False
    callbacks: list[TrainingCallback] = field(default_factory=list)

    def fit(self, **changes: Any) -> FitResult:
        """Run the standard loop on this run's pieces; keyword ``changes`` replace any of them for one phase.

        ``model``, ``task``, ``param_groups``, ``callbacks``, ``train_dataset``, ``eval_dataset``,
        ``training`` (a ``TrainingConfig``), ``output_dir`` (a phase's own checkpoints) and ``resume`` (whether
        this phase continues from its newest checkpoint) can be replaced.
        """
        from nlp_transfer.training.loop import fit

        arguments: dict[str, Any] = {
            "model": self.model,
            "task": self.task,
            "param_groups": self.param_groups,
            "train_dataset": self.splits["train"],
            "eval_dataset": self.splits["validation"],
            "config": self.config.training,
            "callbacks": self.callbacks,
        }
        training = changes.pop("training", None)
        output_dir = changes.pop("output_dir", self.output_dir)
        resume = changes.pop("resume", self.resume)
        arguments.update(changes)
        if training is not None:
            arguments["config"] = training
        return fit(
            output_dir=output_dir,
            seed=self.config.seed,
            resume=resume,
            accelerator=self.accelerator,
            hparams=config_to_dict(self.config),
            **arguments,
        )


class TransferExtension:
    """A transfer option that several strategies share (for example ``transfer.case_vocab``).

    It may change the task (its tokenizer), the model, and the weights that are saved. It is built with the
    run's transfer options (:class:`~nlp_transfer.config.TransferConfig`) when its key is set.
    """

    #: whether :meth:`prepare_model` needs :meth:`prepare_task` to have run (a check of the model's structure alone,
    #: ``check_strategy_fits_model``, leaves such an extension out)
    needs_task: ClassVar[bool] = False

    def __init__(self, options: TransferConfig | None = None) -> None:
        self.options = options or TransferConfig()

    def check(self, config: RunConfig, strategy: Strategy) -> None:
        """Refuse a config this option cannot serve (raise ``ConfigError``)."""

    def prepare_task(self, task: Any) -> Any:
        """The task with this option applied (before any text is tokenized)."""
        return task

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model with this option applied (before the strategy sets what trains)."""
        return model

    def before_save(self, model: nn.Module, state_dict: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """Turn the trained model back into a plain one before saving; returns the (possibly new) gathered state dict."""
        return state_dict


class Strategy:
    """The standard plan: everything trains at ``training.learning_rate`` in the standard loop.

    Subclasses set :attr:`name` and override the steps that differ.
    """

    name: ClassVar[str] = ""
    #: whether the input embeddings train (``transfer.case_vocab`` needs it)
    trains_embeddings: ClassVar[bool] = True
    #: whether ``transfer.layer_lr_decay`` means something to this strategy
    uses_layer_lr_decay: ClassVar[bool] = True
    #: whether the head can read the mean of the token states (``transfer.pooling=mean``) in this strategy
    pools_tokens: ClassVar[bool] = False
    #: whether ``transfer.freeze_pooler`` means something to this strategy (it keeps the pooler out of what trains)
    reads_freeze_pooler: ClassVar[bool] = False
    #: whether training reads nothing of the model but its logits, so the last layer may skip the positions the head
    #: never reads (``training.skip_unread_positions``). Opt-in: a strategy that reads token states must leave it False
    logits_only: ClassVar[bool] = False
    #: whether ``fit`` of :meth:`parameter_groups` (with :meth:`callbacks`) trains as this strategy does: the Python
    #: API's ``apply_strategy``; False for a strategy whose own :meth:`train` runs phases that ``fit`` alone would skip
    one_fit_of_its_groups: ClassVar[bool] = True
    #: the ``transfer.*`` keys of options particular to this strategy (``lora_r`` for lora). A key that some registered
    #: strategy lists and this one does not is refused when set away from its default: it would be silently ignored
    own_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: TransferConfig | None = None, extensions: list[TransferExtension] | None = None) -> None:
        self.options = options or TransferConfig()
        self.extensions = list(extensions or [])

    # ------------------------------------------------------------------ config time

    def check(self, config: RunConfig) -> None:
        """Refuse options this strategy cannot use, naming the key and the fix."""
        if config.transfer.pooling != "cls" and (not self.pools_tokens or config.task == "ner"):
            pooling = " or ".join(name for name, cls in STRATEGIES.items() if cls.pools_tokens)
            raise ConfigError(
                f"transfer.pooling={config.transfer.pooling} applies to strategy={pooling} on classification or "
                f"multilabel tasks (this run: strategy={self.name}, task={config.task}); remove it or set transfer.pooling=cls."
            )
        if not self.uses_layer_lr_decay and config.transfer.layer_lr_decay != 1.0:
            decaying = ", ".join(name for name, cls in STRATEGIES.items() if cls.uses_layer_lr_decay)
            raise ConfigError(
                f"transfer.layer_lr_decay applies to {decaying}, not to strategy={self.name}; "
                "remove it or pick one of those strategies."
            )
        if config.transfer.freeze_pooler and not self.reads_freeze_pooler:
            readers = ", ".join(name for name, cls in STRATEGIES.items() if cls.reads_freeze_pooler)
            raise ConfigError(
                f"transfer.freeze_pooler applies to {readers}, not to strategy={self.name} (its pooler trains); remove it."
            )
        self._refuse_unread_options(config)
        for extension in self.extensions:
            extension.check(config, self)

    def _refuse_unread_options(self, config: RunConfig) -> None:
        """Refuse a set option that only other strategies read (``transfer.lora_r`` under strategy=full), except
        inside :func:`unread_options_allowed`."""
        if _UNREAD_OPTIONS_ALLOWED.get():
            return
        defaults = TransferConfig()
        for key in sorted(strategy_specific_options() - self.own_options):
            if getattr(config.transfer, key) != getattr(defaults, key):
                names = strategies_reading(key) or []
                raise ConfigError(
                    f"transfer.{key} applies to strategy={' or '.join(names)}, not to strategy={self.name}, which would "
                    f"ignore it; remove it or pick that strategy (compare: prefix it, {names[0]}:transfer.{key}=...)."
                )

    # ------------------------------------------------------------------ preparing

    def check_data(self, config: RunConfig, data: Any) -> None:
        """Refuse loaded data this strategy cannot train on (raise ``DataError``), before the run directory is written.

        ``data.splits`` holds the raw splits (for text tasks the columns ``text``, ``label`` and ``line``, the line of
        ``config.data.train_file`` a row came from; rows the run made itself have line 0).
        """

    def prepare_task(self, task: Any) -> Any:
        """The task the run uses (extensions may give it another tokenizer)."""
        for extension in self.extensions:
            task = extension.prepare_task(task)
        return task

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model this strategy trains: ``model`` after the extensions, possibly wrapped."""
        for extension in self.extensions:
            model = extension.prepare_model(model)
        return model

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """Set ``requires_grad`` on ``model`` and return the optimizer's parameter groups."""
        raise NotImplementedError(f"strategy {self.name!r} does not say which parameters train")

    def callbacks(self, model: nn.Module) -> list[TrainingCallback]:
        """Callbacks the loop calls at the start, before each epoch and after each optimizer step."""
        return []

    # ------------------------------------------------------------------ training

    def train(self, run: TrainingRun) -> FitResult:
        """Train: by default the standard loop over the tokenized splits.

        However it trains, the best weights must end up in ``run.model`` (the loop loads them back into the
        model it was given): evaluation and saving read that one model.
        """
        return run.fit()

    # ------------------------------------------------------------------ results

    def state_dict_for_save(self, model: nn.Module, state_dict: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """The weights to save: the extensions turn their parts back into plain modules (call on every process)."""
        for extension in self.extensions:
            state_dict = extension.before_save(model, state_dict)
        return state_dict

    def save(self, model: nn.Module, output_dir: Path, state_dict: dict[str, torch.Tensor] | None) -> None:
        """Write the trained model with ``save_pretrained`` (safetensors); ``state_dict`` replaces its own weights."""
        model.save_pretrained(output_dir, safe_serialization=True, state_dict=state_dict)

    def run_info(self) -> dict[str, Any]:
        """Facts about this strategy's run for run_info.json (for example feature-encoding time)."""
        return {}


#: strategy name -> class; filled by :func:`register_strategy`
STRATEGIES: dict[str, type[Strategy]] = {}


#: set by :func:`unread_options_allowed`: options of other strategies are let through while it is
_UNREAD_OPTIONS_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar("unread_options_allowed", default=False)


@contextmanager
def unread_options_allowed() -> Iterator[None]:
    """Load configs that set options only other strategies read: a run saved before they were refused (its config
    is then compared through :func:`without_unread_options`), or the config ``compare`` shares between strategies."""
    token = _UNREAD_OPTIONS_ALLOWED.set(True)
    try:
        yield
    finally:
        _UNREAD_OPTIONS_ALLOWED.reset(token)


def strategy_specific_options() -> set[str]:
    """The ``transfer.*`` keys that some registered strategy lists in its ``own_options``."""
    return set().union(*(cls.own_options for cls in STRATEGIES.values()))


def without_unread_options(config: RunConfig, strategy: str | None = None, shared: RunConfig | None = None) -> RunConfig:
    """A copy of ``config`` whose options that ``strategy`` (default: the config's) does not read are at their
    defaults: those particular to other strategies, and those a class flag gives to some (``layer_lr_decay``).
    With ``shared``, only the ones ``config`` holds as ``shared`` does (``compare``: a ``LABEL:`` override stays).
    """
    strategy = strategy or config.strategy
    fitted, defaults = copy.deepcopy(config), TransferConfig()
    for key in sorted(strategy_specific_options() | set(FLAGGED_OPTIONS)):
        unread = strategy not in (strategies_reading(key) or [strategy])
        if unread and (shared is None or getattr(config.transfer, key) == getattr(shared.transfer, key)):
            setattr(fitted.transfer, key, getattr(defaults, key))
    return fitted


#: transfer options that the strategies with this class flag read (the others read only their ``own_options``)
FLAGGED_OPTIONS = {"layer_lr_decay": "uses_layer_lr_decay", "freeze_pooler": "reads_freeze_pooler", "pooling": "pools_tokens"}


def strategies_reading(key: str) -> list[str] | None:
    """The registered strategies that read ``transfer.<key>``; None for an option that every strategy reads."""
    flag = FLAGGED_OPTIONS.get(key)
    if flag is not None:
        return [name for name, cls in STRATEGIES.items() if getattr(cls, flag)]
    owners = [name for name, cls in STRATEGIES.items() if key in cls.own_options]
    return owners or None


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` selectable as ``strategy: cls.name``.

    A name already taken by another class is refused: a plugin would otherwise replace a strategy without a word.
    The same class defined again (a module reloaded) replaces itself.
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name to be registered")
    taken = STRATEGIES.get(cls.name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(
            f"strategy {cls.name!r} is already registered by {taken.__module__}.{taken.__qualname__}; "
            f"give {cls.__module__}.{cls.__qualname__} another name."
        )
    STRATEGIES[cls.name] = cls
    return cls


def strategy_class(name: str) -> type[Strategy]:
    """The registered strategy called ``name``, or a ConfigError listing the choices."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy '{name}' is unknown; choose one of {', '.join(STRATEGIES)}.")
    return STRATEGIES[name]
