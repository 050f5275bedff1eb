"""Rank candidate source models by how well their frozen features fit a task.

:mod:`~nlp_transfer.rank.estimators` holds the transferability estimators (LogME, H-score, kNN, linear
probe); :mod:`~nlp_transfer.rank.candidates` parses candidates and encodes the run's data with each;
:mod:`~nlp_transfer.rank.ranking` runs ``nlp-transfer rank`` and writes its report.
"""

from nlp_transfer.rank.candidates import Candidate, CandidateFeatures, encode_candidate, parse_candidate, parse_candidates
from nlp_transfer.rank.estimators import ESTIMATORS, hscore, knn_accuracy, linear_probe, logme, score_features
from nlp_transfer.rank.ranking import RankRow, markdown_table, recommend, run_ranking

__all__ = [
    "ESTIMATORS",
    "Candidate",
    "CandidateFeatures",
    "RankRow",
    "encode_candidate",
    "hscore",
    "knn_accuracy",
    "linear_probe",
    "logme",
    "markdown_table",
    "parse_candidate",
    "parse_candidates",
    "recommend",
    "run_ranking",
    "score_features",
]
