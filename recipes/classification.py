"""Fine-tune a text classifier: multi-class (task: classification) or multi-label (task: multilabel).

    python recipes/classification.py recipes/configs/classification/topics_full.yaml [key=value ...]
    accelerate launch recipes/classification.py recipes/configs/classification/support_tickets_multilabel.yaml

The config says which data, model and strategy; every key can be overridden as key=value.
"""

import sys

from nlp_transfer.cli import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("classification", sys.argv[1:], prog="recipes/classification.py"))
