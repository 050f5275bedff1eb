"""How much faster int8 matrix products are than float32 ones on this CPU (issue #20): the ceiling of int8 export.

    python benchmarks/int8_gemm.py --threads 2

At batch 32 most of an encoder's prediction time is its linear layers. This times one of them alone, at the default
model's shapes for 32 texts of 32 tokens (M = 1,024 rows: 384 x 384, 384 x 1,536 and 1,536 x 384) and a square
1,024 product: torch's float32 ``matmul``, onnxruntime's float32 ``MatMul``, and the same graph quantized as
``nlp-transfer export --int8`` quantizes (``quantize_dynamic``, int8 weights per channel, 7-bit range, activations
quantized on the fly). Medians of --repeats after 5 warm-up calls, each side on --threads threads. When the int8
product is less than twice torch's float32 one, int8 prediction cannot reach twice torch's speed at that batch size
on this CPU (the layers around the products do not get faster either).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import median_seconds, report_header, write_result

SHAPES = ((1024, 384, 384), (1024, 384, 1536), (1024, 1536, 384), (1024, 1024, 1024))


def matmul_graphs(m: int, k: int, n: int, folder: Path) -> tuple[Path, Path]:
    """A one-MatMul ONNX graph with a constant k x n weight, and its dynamic int8 quantization."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [weight],
    )
    plain, quantized = folder / f"mm_{m}_{k}_{n}.onnx", folder / f"mm_{m}_{k}_{n}_int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), plain)
    quantize_dynamic(str(plain), str(quantized), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return plain, quantized


def measure(shape: tuple[int, int, int], threads: int, repeats: int, folder: Path) -> dict[str, float]:
    """GFLOP/s of the three sides at one shape, and int8's speed-up over torch float32."""
    import numpy as np
    import onnxruntime as ort
    import torch

    m, k, n = shape
    plain, quantized = matmul_graphs(m, k, n, folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
    sessions = {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in (("ort_fp32", plain), ("ort_int8", quantized))
    }
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    tx, tw = torch.from_numpy(x), torch.randn(k, n)
    seconds = {"torch_fp32": median_seconds(lambda: tx @ tw, repeats, warmup=5)}
    for name, session in sessions.items():
        seconds[name] = median_seconds(lambda s=session: s.run(None, {"x": x}), repeats, warmup=5)
    flops = 2 * m * k * n / 1e9
    row = {f"{name}_gflops": round(flops / s, 1) for name, s in seconds.items()}
    return {"shape": list(shape), **row, "int8_over_torch_fp32": round(seconds["torch_fp32"] / seconds["ort_int8"], 2)}


def main() -> int:
    """Every shape; prints a Markdown table and writes int8_gemm.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="int8-gemm-") as folder:
        rows = [measure(shape, args.threads, args.repeats, Path(folder)) for shape in SHAPES]
    print("| M x K x N | torch fp32 GFLOP/s | onnxruntime fp32 | onnxruntime int8 | int8 / torch fp32 |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        shape = " x ".join(str(v) for v in row["shape"])
        print(
            f"| {shape} | {row['torch_fp32_gflops']} | {row['ort_fp32_gflops']} | {row['ort_int8_gflops']} | {row['int8_over_torch_fp32']}x |"
        )
    print(f"written to {write_result('int8_gemm', {**report_header(args.threads), 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
