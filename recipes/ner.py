"""Fine-tune a named-entity tagger.

    python recipes/ner.py recipes/configs/ner/minilm_full.yaml [key=value ...]
    accelerate launch recipes/ner.py recipes/configs/ner/conll2003_full.yaml

The config says which data, model and strategy; every key can be overridden as key=value.
"""

import sys

from nlp_transfer.cli import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("ner", sys.argv[1:], prog="recipes/ner.py"))
