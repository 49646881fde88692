"""ONNX Runtime (Python) latency on the same model, input and thread count as `stylize bench`.

python ort_bench.py MODEL INPUT.f32 H W --threads N --iterations K --warmup W [--weights W.f32]
Prints JSON: {"ms": [per-iteration session.run milliseconds], "onnxruntime": version}.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("height", type=int)
    p.add_argument("width", type=int)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--weights", default="")
    a = p.parse_args()

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    if a.threads:
        opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    feeds = {"content": np.fromfile(a.input, np.float32).reshape(1, 3, a.height, a.width)}
    names = {i.name: i for i in sess.get_inputs()}
    if "style_weights" in names:
        feeds["style_weights"] = np.fromfile(a.weights, np.float32)
    if "style_embedding" in names:
        feeds["style_embedding"] = np.fromfile(a.weights, np.float32).reshape(1, -1)
    for _ in range(a.warmup):
        sess.run(["stylized"], feeds)
    ms = []
    for _ in range(a.iterations):
        t = time.perf_counter()
        sess.run(["stylized"], feeds)
        ms.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"ms": ms, "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
