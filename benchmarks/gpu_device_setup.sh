# Sourced on the lent GPU machine, from the repo root, after benchmarks/gpu_carry.sh prepared .whl/ and .gpu/ here:
#   source benchmarks/gpu_device_setup.sh && bash benchmarks/gpu_smoke.sh
# Installs the wheels into /tmp/site, restores the model to float32, unpacks SST-2 into /tmp/datasets, and puts
# `python` and `nlp-transfer` wrappers on PATH (the image has only python3, inside a venv: a symlink to it would lose
# the venv, and a warm machine keeps /tmp from the previous call, so old wrappers are removed, never written through).
# Each step prints as it goes and has a time limit, so a failure shows in the device tool's output.
G=$PWD/.gpu
PY3=$(command -v python3)
echo "# setup: python3=$PY3"
timeout 120 "$PY3" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$G/pkgs:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export NLP_TRANSFER_DATASETS=/tmp/datasets
rm -rf /tmp/bin && mkdir -p /tmp/bin
printf '#!/bin/sh\nexec %s "$@"\n' "$PY3" >/tmp/bin/python
printf '#!/bin/sh\nexec %s -m nlp_transfer.cli "$@"\n' "$PY3" >/tmp/bin/nlp-transfer
chmod +x /tmp/bin/python /tmp/bin/nlp-transfer && export PATH=/tmp/bin:$PATH
timeout 120 "$PY3" - <<'PY' || return 1
import gzip
import shutil
from pathlib import Path

from safetensors.torch import load, save_file

source, target = Path(".gpu/model16"), Path(".gpu/model")
shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors.gz"))
with gzip.open(source / "model.safetensors.gz", "rb") as packed:
    weights = load(packed.read())
save_file({k: v.float().contiguous() for k, v in weights.items()}, target / "model.safetensors", metadata={"format": "pt"})
print("# setup: model restored to float32")
PY
mkdir -p /tmp/datasets/sst2 && gunzip -c "$G/sst2/train.tsv.gz" >/tmp/datasets/sst2/train.tsv && cp "$G/sst2/dev.tsv" /tmp/datasets/sst2/
timeout 120 "$PY3" -c "import torch, transformers, peft, accelerate, datasets; print('# setup: torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)" || return 1
timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
