"""Label-name examples (``data.label_examples``): training rows written from the labels' own names.

A label's name is a description of its class that a pretrained encoder can read. ``data.label_examples=N`` adds, for
every label, ``N`` training rows whose text is ``data.label_template`` with the label's name in place of ``{}`` (for
example ``This sentence is positive.``) and whose label is that label; ``data.label_descriptions`` gives words for
labels whose names are codes (``HUM: human``). The rows join the training split only, after the validation hold-out
and ``data.per_class``; validation and test never see them. This is the templated-example idea of SetFit's zero-shot
mode, used here beside the labelled rows.

Measured (BENCHMARKS.md, ``benchmarks/few_shot.py --label-examples 2``, 8 examples per class, 5 seeds): two rows a
label lifted ``strategy=contrastive`` (the arm validation chose) by 3.0 points on SST-2, 4.4 on TREC-6 (its codes
written as words), 8.3 on emotion and 1.9 on Amazon kitchen reviews; the frozen encoder gained 1.7 to 4.3 points
but lost 2.0 on TREC-6. The SetFit library given the same rows gains 1.6 to 8.2 points too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from nlp_transfer.errors import DataError

Row = TypeVar("Row")
SLOT = "{}"  # where data.label_template takes the label's name or description


def label_text(name: str, template: str, descriptions: dict[str, str]) -> str:
    """The text of a label's rows: ``template`` with ``descriptions[name]`` (or ``name``) in place of ``{}``."""
    return template.replace(SLOT, descriptions.get(name, name))


def check_descriptions(descriptions: dict[str, str], labels: Sequence[str]) -> None:
    """Every key of ``data.label_descriptions`` is one of the run's labels; raise a DataError naming the first that is not."""
    for key in descriptions:
        if key not in labels:
            raise DataError(
                f"data.label_descriptions names '{key}', which is not a label of this run "
                f"({', '.join(labels)}). Use the label names as keys, or remove '{key}'."
            )


def label_example_rows(
    labels: Sequence[str],
    make_row: Callable[[str, Any], Row],
    *,
    copies: int,
    template: str,
    descriptions: dict[str, str],
    multi_label: bool,
) -> list[Row]:
    """``copies`` rows for each label in ``labels`` order, built by ``make_row(text, label)``.

    A multilabel row carries the one label (``[name]``).
    """
    return [
        make_row(label_text(name, template, descriptions), [name] if multi_label else name)
        for name in labels
        for _ in range(copies)
    ]


def add_label_examples(loaded: Any, config: Any, *, make_row: Callable[[str, Any], Any], multi_label: bool) -> int:
    """Append ``config.label_examples`` rows a label to ``loaded.rows["train"]`` (a ``LoadedSplits``); how many were added.

    ``config`` is a :class:`~nlp_transfer.config.DataConfig`; its training source gains a note of the rows added.
    """
    if not config.label_examples:
        return 0
    from nlp_transfer.data.labels import whole_number_text

    # keyed as the file writes its labels ("1.0"), which now read as whole numbers ("1")
    descriptions = {
        key if key in loaded.labels else whole_number_text(key): text for key, text in config.label_descriptions.items()
    }
    check_descriptions(descriptions, loaded.labels)
    rows = label_example_rows(
        loaded.labels,
        make_row,
        copies=config.label_examples,
        template=config.label_template,
        descriptions=descriptions,
        multi_label=multi_label,
    )
    loaded.rows["train"] = loaded.rows["train"] + rows
    loaded.sources["train"] += f" + {len(rows):,} label-name rows ({config.label_examples} a label)"
    return len(rows)
