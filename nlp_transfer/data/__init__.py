"""Reading, checking and splitting data."""

from nlp_transfer.data.loading import (
    TextClassificationData,
    load_text_classification_data,
    read_text_classification_file,
)
from nlp_transfer.data.readers import infer_format, read_records

__all__ = [
    "TextClassificationData",
    "infer_format",
    "load_text_classification_data",
    "read_records",
    "read_text_classification_file",
]
