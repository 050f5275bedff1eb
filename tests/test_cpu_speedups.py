"""Process-level speed-ups of a CPU training run change time, never results.

- heap reuse (``training.reuse_heap_memory``): large blocks stay on glibc's heap during training;
- gradient clipping that skips the product with exactly 1 on CPUs;
- the garbage collector paused around the heavy imports and frozen at exit.
"""

import gc
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from safetensors.torch import load_file

from nlp_transfer.collector import imports_paused
from nlp_transfer.pipeline import run_training
from nlp_transfer.training import heap
from nlp_transfer.training.loop import clip_gradients
from tests.test_training import config_for

BIG = 12_000_000  # floats: 48 MB, above glibc's largest mmap threshold (32 MiB)

#: run in a fresh interpreter: how glibc serves a block depends on what the process allocated and freed before
HEAP_PROBE = """
import ctypes, torch
from nlp_transfer.training import heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = heap.glibc()
libc.mallinfo2.restype = MallInfo2

def mapped(floats=BIG):
    before = libc.mallinfo2().hblkhd
    block = torch.empty(floats)
    after = libc.mallinfo2().hblkhd
    del block
    return after - before

print("outside", mapped())
with heap.reused_heap_memory() as applied:
    print("applied", applied)
    print("inside", mapped())
print("after", mapped(BIG * 8))
print("after_8mb", mapped(BIG // 6))
with heap.reused_heap_memory(False) as applied:
    print("disabled", applied, mapped())
"""


@pytest.mark.skipif(heap.glibc() is None, reason="glibc's mallopt only")
def test_big_blocks_come_from_the_heap_inside_the_block_and_from_mmap_outside():
    code = f"BIG = {BIG}\n" + HEAP_PROBE
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seen = dict(line.split(" ", 1) for line in printed.strip().splitlines())
    assert int(seen["outside"]) >= BIG * 4  # glibc's default: a fresh mapping each time
    assert seen["applied"] == "True" and int(seen["inside"]) == 0
    # mapping is allowed again after it (a 384 MB block: more than the heap may still hold free from inside the block)
    assert int(seen["after"]) >= BIG * 32
    assert int(seen["after_8mb"]) == 0  # 8 MB ones stay on the heap, as glibc's sliding threshold keeps them
    assert seen["disabled"].startswith("False")


def test_heap_reuse_trains_the_same_model(sentiment_files, tiny_model_dir, tmp_path):
    """The same run with and without the setting: every saved weight bit for bit."""
    for name, on in (("on", True), ("off", False)):
        run_training(
            config_for(
                sentiment_files, tiny_model_dir, tmp_path / name, **{"training.epochs": 1, "training.reuse_heap_memory": on}
            )
        )
    on, off = load_file(tmp_path / "on" / "model.safetensors"), load_file(tmp_path / "off" / "model.safetensors")
    assert on.keys() == off.keys()
    assert all(torch.equal(on[key], off[key]) for key in on)


def cpu_accelerator(**changes):
    """What clip_gradients reads of an Accelerator, recording calls of its own clipping."""
    calls = []
    fields = {"distributed_type": DistributedType.NO, "device": torch.device("cpu"), "scaler": None} | changes
    return SimpleNamespace(**fields, clip_grad_norm_=lambda params, norm: calls.append(norm)), calls


def model_with_gradients(scale: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    for param in model.parameters():
        param.grad = torch.randn_like(param) * scale
    model[0].bias.grad = None  # a parameter without a gradient is left alone
    return model


@pytest.mark.parametrize("scale", [1e-3, 10.0, float("nan")])
def test_clipping_gives_torchs_gradients(scale):
    ours, reference = model_with_gradients(scale), model_with_gradients(scale)
    accelerator, calls = cpu_accelerator()
    clip_gradients(accelerator, ours, 1.0)
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    for mine, theirs in zip(ours.parameters(), reference.parameters(), strict=True):
        assert (mine.grad is None) == (theirs.grad is None)
        if mine.grad is not None:
            assert torch.equal(mine.grad, theirs.grad) or (mine.grad.isnan().all() and theirs.grad.isnan().all())
    assert calls == []  # computed here, not by Accelerate


def test_clipping_below_the_bound_touches_no_gradient(monkeypatch):
    scaled = []
    monkeypatch.setattr(torch.nn.utils, "clip_grads_with_norm_", lambda *args, **kwargs: scaled.append(args))
    clip_gradients(cpu_accelerator()[0], model_with_gradients(1e-3), 1.0)
    assert scaled == []
    clip_gradients(cpu_accelerator()[0], model_with_gradients(10.0), 1.0)
    assert len(scaled) == 1


@pytest.mark.parametrize(
    "changes",
    [{"scaler": object()}, {"device": torch.device("meta")}, {"distributed_type": DistributedType.FSDP}],
)
def test_other_set_ups_clip_through_accelerate(changes):
    accelerator, calls = cpu_accelerator(**changes)
    clip_gradients(accelerator, model_with_gradients(10.0), 1.0)
    assert calls == [1.0]


def test_imports_paused_freezes_only_on_a_first_import_of_a_command_line_process(monkeypatch):
    """Planted fault: ``nlp_transfer.cli.main([...])`` called from Python froze every object alive in the caller's
    process (its garbage cycles then never freed); only the process's own command line may freeze."""
    from nlp_transfer import collector

    name = "nlp_transfer_test_module_never_imported"
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    monkeypatch.setattr(collector, "_command_line", False)
    collector.mark_command_line(["train", "from-python.yaml"])  # not this process's arguments
    with imports_paused(name):
        assert gc.isenabled()
        sys.modules[name] = sys
    sys.modules.pop(name, None)
    assert gc.get_freeze_count() == frozen
    collector.mark_command_line(sys.argv[1:])  # the process's own command line
    try:
        with imports_paused(name):
            assert not gc.isenabled()
            sys.modules[name] = sys  # stands for the import
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen
    finally:
        sys.modules.pop(name, None)
        gc.unfreeze()  # give this test process its collector back
    with imports_paused("torch"):  # already imported: the collector stays on, nothing is frozen
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_the_exit_hook_freezes_before_the_interpreter_ends():
    """An atexit handler registered first runs last (LIFO): it sees the frozen objects."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from nlp_transfer.collector import mark_command_line, skip_final_collection\n"
        "mark_command_line(None)\n"
        "before = atexit._ncallbacks()\n"
        "skip_final_collection(); skip_final_collection()\n"
        "print('hooks added:', atexit._ncallbacks() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "hooks added: 1" in out  # registered once however often it is called
    assert "frozen at exit: True" in out


#: run in a fresh interpreter: record whether the collector runs when torch and transformers' models first load
IMPORT_WATCH = """
import gc, sys
seen = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in ("torch", "transformers.modeling_utils") and name not in seen:
            seen[name] = gc.isenabled()
        return None

sys.meta_path.insert(0, Watch())
from nlp_transfer.cli import main
sys.argv = ["nlp-transfer", *ARGV]  # as the console script runs it
exit_code = main()
print("exit", exit_code, "collector on at", sorted(k for k, on in seen.items() if on), "seen", sorted(seen),
      "frozen", gc.get_freeze_count() > 100000, "sklearn", "sklearn" in sys.modules)
"""


@pytest.mark.parametrize("verb", ["train", "rank"])
def test_the_heavy_imports_run_with_the_collector_paused(verb, tmp_path, tiny_model_dir):
    """train and rank import torch and transformers' models (first while checking the config's task) with the
    collector paused, then freeze what they imported. LogME alone needs no scikit-learn: the estimators that use
    it import it themselves (about a second of imports)."""
    from tests.conftest import synthetic_sentiment, write_csv

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(60, 1))
    validation = write_csv(tmp_path / "validation.csv", synthetic_sentiment(20, 2))  # none carved from train
    (tmp_path / "run.yaml").write_text("task: classification\n", encoding="utf-8")
    common = [str(tmp_path / "run.yaml"), f"data.train_file={train}", f"data.validation_file={validation}"]
    common += [f"model={tiny_model_dir}", f"output_dir={tmp_path / 'run'}", "training.epochs=1"]
    if verb == "rank":
        argv = ["rank", *common, "--models", f"{tiny_model_dir},@depth=1", "--sample", "40", "--estimators", "logme"]
        argv += ["--output", str(tmp_path / "report")]
    else:
        argv = ["train", *common, "training.max_length=16"]
    code = IMPORT_WATCH.replace("ARGV", repr(argv))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("exit 0 collector on at [] seen ['torch', 'transformers.modeling_utils'] frozen True"), (
        line + out.stderr[-2000:]
    )
    if verb == "rank":
        assert line.endswith("sklearn False")
