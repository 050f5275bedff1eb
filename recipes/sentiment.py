"""Fine-tune a sentiment classifier.

    python recipes/sentiment.py recipes/configs/sentiment/minilm_full.yaml [key=value ...]
    accelerate launch recipes/sentiment.py recipes/configs/sentiment/minilm_full.yaml

The config says which data, model and strategy; every key can be overridden as key=value.
"""

import sys

from nlp_transfer.cli import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("sentiment", sys.argv[1:], prog="recipes/sentiment.py"))
