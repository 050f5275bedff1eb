"""Continued pretraining (masked-LM) of an encoder on unlabelled text of the target domain.

    python recipes/adapt.py recipes/configs/adapt/minilm_tapt.yaml [key=value ...]
    python recipes/adapt.py recipes/configs/sentiment/minilm_full.yaml data.train_file=texts.txt output_dir=runs/adapted

Any run config works: its model, seed, data.* reading keys and training.* settings are used; task and label keys
are ignored. The output folder is a model that any config can name as ``model:``.
"""

import sys

from nlp_transfer.adapt.command import run_adapt

if __name__ == "__main__":
    sys.exit(run_adapt(sys.argv[1:], prog="recipes/adapt.py"))
