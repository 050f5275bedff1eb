"""Domain shift between two text sets, measured before anyone trains (``nlp-transfer shift``).

:mod:`~nlp_transfer.shift.measure` holds :func:`domain_shift`, the library entry point, and its
:class:`ShiftReport`; :mod:`~nlp_transfer.shift.domain` the domain classifier and proxy A-distance;
:mod:`~nlp_transfer.shift.vocabulary` word overlap, the tokenizer's view and lengths;
:mod:`~nlp_transfer.shift.labels` a run's predicted-label shift; :mod:`~nlp_transfer.shift.embed` the frozen
embeddings; :mod:`~nlp_transfer.shift.sources` reading the inputs; :mod:`~nlp_transfer.shift.report` the text,
JSON and plot; :mod:`~nlp_transfer.shift.command` the verb.
"""

from nlp_transfer.shift.domain import MIN_TEXTS_PER_SIDE, DomainClassifier, domain_classifier, proxy_a_distance
from nlp_transfer.shift.labels import label_shares, label_shift, total_variation
from nlp_transfer.shift.measure import ShiftReport, domain_shift
from nlp_transfer.shift.vocabulary import tokenizer_view, vocabulary_overlap, words

__all__ = [
    "MIN_TEXTS_PER_SIDE",
    "DomainClassifier",
    "ShiftReport",
    "domain_classifier",
    "domain_shift",
    "label_shares",
    "label_shift",
    "proxy_a_distance",
    "tokenizer_view",
    "total_variation",
    "vocabulary_overlap",
    "words",
]
