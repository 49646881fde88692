"""ONNX Runtime (Python): the peer that `stylize bench` measures in the same run as our engine.

Serve mode (what `stylize bench` uses, so the peer's iterations interleave with ours):

    python ort_bench.py serve --threads N

reads one JSON request per line on stdin and answers one JSON line on stdout:

    {"cmd": "load", "model": M, "input": IN.f32, "height": H, "width": W, "weights": W.f32}
        -> {"ok": true, "onnxruntime": "1.32.0", "macs": total multiply-accumulates per run,
            "macs_by_op": {"Conv": ..., ...}}
    {"cmd": "run"}   -> {"ok": true, "ms": one session.run in milliseconds}
    {"cmd": "quit"}  -> exits

The MAC count is read from the graph at the loaded size: every Conv, ConvTranspose, MatMul and
Gemm (and their quantized forms) with the shapes ONNX Runtime itself produced for one run.
"""
import argparse
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

MAC_OPS = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MatMul", "Gemm",
           "MatMulInteger", "QLinearMatMul", "FusedConv"}


def session(model_bytes_or_path, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes_or_path, opts, providers=["CPUExecutionProvider"])


def feeds_for(sess, content, weights):
    feeds = {"content": content}
    names = {i.name for i in sess.get_inputs()}
    if "style_weights" in names:
        feeds["style_weights"] = weights
    if "style_embedding" in names:
        feeds["style_embedding"] = weights.reshape(1, -1)
    return feeds


def count_macs(model_path, feeds):
    """Multiply-accumulates of one run, from the shapes of every MAC op's tensors."""
    model = onnx.load(model_path)
    graph = model.graph
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    wanted = []
    for node in graph.node:
        if node.op_type in MAC_OPS:
            wanted.extend(n for n in list(node.input) + list(node.output) if n and n not in inits)
    existing = {o.name for o in graph.output}
    for name in dict.fromkeys(wanted):
        if name not in existing:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    shapes = dict(zip(names, (np.shape(v) for v in sess.run(names, feeds))))
    shapes.update(inits)
    shapes.update({k: np.shape(v) for k, v in feeds.items()})
    by_op = {}
    for node in graph.node:
        if node.op_type not in MAC_OPS:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        group = attrs.get("group", 1)
        macs = 0
        if node.op_type in ("Conv", "ConvInteger", "FusedConv"):
            w = shapes[node.input[1]]
            out = shapes[node.output[0]]
            macs = int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "QLinearConv":
            w = shapes[node.input[3]]
            out = shapes[node.output[0]]
            macs = int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose":
            w = shapes[node.input[1]]
            x = shapes[node.input[0]]
            macs = int(np.prod(x)) * int(np.prod(w[1:]))
        else:  # MatMul, Gemm and quantized forms: out elements x inner dimension
            a = shapes[node.input[0]]
            out = shapes[node.output[0]]
            inner = a[-2] if (node.op_type == "Gemm" and attrs.get("transA", 0)) else a[-1]
            macs = int(np.prod(out)) * int(inner)
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    return sum(by_op.values()), by_op


def serve(threads):
    sess = feeds = None
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req.get("cmd")
        if cmd == "quit":
            return
        try:
            if cmd == "load":
                h, w = req["height"], req["width"]
                content = np.fromfile(req["input"], np.float32).reshape(1, 3, h, w)
                weights = np.fromfile(req["weights"], np.float32)
                sess = session(req["model"], threads)
                feeds = feeds_for(sess, content, weights)
                macs, by_op = count_macs(req["model"], feeds)
                reply = {"ok": True, "onnxruntime": ort.__version__, "macs": macs,
                         "macs_by_op": by_op}
            elif cmd == "run":
                t = time.perf_counter()
                sess.run(["stylized"], feeds)
                reply = {"ok": True, "ms": (time.perf_counter() - t) * 1e3}
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as e:  # reported to the caller, which stops with the message
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve"])
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    serve(a.threads)


if __name__ == "__main__":
    main()
