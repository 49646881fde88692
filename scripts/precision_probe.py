#!/usr/bin/env python3
"""Lower-precision variants of a style net on the CPU: are any faster at equal quality?

    assets/venv/bin/python scripts/precision_probe.py MODEL.onnx [--size 640x360] \
        [--iterations 30] [--threads 2] [--out docs/bench/precision-cpu.json]

Variants, all made with ONNX Runtime's own tools from the float32 graph:
- int8-all: static QDQ quantization of every Conv (per-channel int8 weights, uint8
  activations; the kernels ONNX Runtime picks on a VNNI CPU), calibrated on frames of
  bikes.mp4 and Megamind.avi;
- int8-inner: the same, leaving the first and last convolutions (3 input or output channels,
  where int8 has least to gain and most to lose) in float32;
- fp16: weights and activations in float16, inputs and outputs kept float32;
- bf16: one 32→32 3×3 convolution in bfloat16 (opset 22), to see whether the CPU provider
  has a bfloat16 kernel at all.

Speed: every iteration runs each variant once on the same frame, in an order that rotates, so
a noisy machine slows all of them alike; median and a distribution-free 95 % interval, and
each variant's time as a ratio to float32 in the same run. Quality: each variant's output
against float32 on held-out frames of vtest.avi (never used for calibration), each frame with
a different one-hot style: mean absolute difference in 0..255 levels, PSNR and luma SSIM.
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16

HERE = os.path.dirname(os.path.abspath(__file__))
MEDIA = os.path.join(HERE, "..", "assets", "media")
sys.path.insert(0, HERE)
from ort_bench import session  # noqa: E402  (the engine's session options)
from quality_metrics import luma, ssim  # noqa: E402


def frames(name, count, step, size):
    cap = cv2.VideoCapture(os.path.join(MEDIA, name))
    out, index = [], 0
    while len(out) < count:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            out.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
        index += 1
    if not out:
        sys.exit(f"no frames read from {name}: run scripts/setup first")
    return out


def feeds(sess, rgb, index):
    d = {"content": (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()}
    inputs = {i.name: i for i in sess.get_inputs()}
    if "style_weights" in inputs:
        n = inputs["style_weights"].shape[0]
        w = np.zeros(n, np.float32)
        w[index % n] = 1.0
        d["style_weights"] = w
    return d


class Calibration(CalibrationDataReader):
    def __init__(self, sess, images):
        self.items = iter([feeds(sess, f, k) for k, f in enumerate(images)])

    def get_next(self):
        return next(self.items, None)


def int8(src, dst, work, calib, exclude):
    pre = os.path.join(work, "pre.onnx")
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    quantize_static(pre, dst, calib, quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                    nodes_to_exclude=exclude, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def convs(path):
    return [n.name for n in onnx.load(path).graph.node if n.op_type == "Conv"]


def bf16_conv_loads():
    """Whether the CPU provider runs a bfloat16 Conv (its answer, verbatim, if not)."""
    w = helper.make_tensor("w", TensorProto.BFLOAT16, [32, 32, 3, 3],
                           np.zeros(32 * 32 * 9, np.uint16).tobytes(), raw=True)
    io = [1, 32, 90, 160]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "bf16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, io)],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, io)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    try:
        session(model.SerializeToString(), 1)
        return True, "loads"
    except Exception as e:  # ONNX Runtime reports a missing kernel as an exception
        return False, str(e).splitlines()[0]


def interval(values):
    """Median and a distribution-free 95 % interval (order statistics)."""
    v = sorted(values)
    n = len(v)
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - half))), min(n - 1, int(math.ceil(n / 2 + half)))
    return {"p50": v[n // 2], "low": v[lo], "high": v[hi]}


def finite(v):
    return None if math.isinf(v) else v


def to_bytes(t):
    return np.clip(t[0].transpose(1, 2, 0) * 255.0, 0, 255).round().astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.iterations < 30:
        sys.exit("--iterations: at least 30 for an interval")
    w, h = (int(v) for v in a.size.split("x"))
    size = (w, h)
    work = tempfile.mkdtemp(prefix="precision-")
    base = session(a.model, a.threads)
    calib = frames("bikes.mp4", 24, 5, size) + frames("Megamind.avi", 8, 20, size)
    names = convs(a.model)
    paths = {"float32": a.model}
    for variant, exclude in (("int8-all", []), ("int8-inner", [names[0], names[-1]])):
        paths[variant] = os.path.join(work, f"{variant}.onnx")
        int8(a.model, paths[variant], work, Calibration(base, calib), exclude)
    paths["fp16"] = os.path.join(work, "fp16.onnx")
    onnx.save(convert_float_to_float16(onnx.load(a.model), keep_io_types=True), paths["fp16"])
    sessions = {k: session(p, a.threads) for k, p in paths.items()}

    held_out = frames("vtest.avi", a.iterations + 3, 4, size)
    order = list(sessions)
    times = {k: [] for k in order}
    quality = {k: {"mean_abs": [], "psnr": [], "ssim": []} for k in order}
    for i, rgb in enumerate(held_out):
        outputs = {}
        shift = i % len(order)
        for k in order[shift:] + order[:shift]:
            f = feeds(sessions[k], rgb, i)
            start = time.perf_counter()
            outputs[k] = sessions[k].run(None, f)[0]
            if i >= 3:  # warm-up
                times[k].append((time.perf_counter() - start) * 1e3)
        ref = to_bytes(outputs["float32"]).astype(np.float64)
        for k, out in outputs.items():
            got = to_bytes(out)
            diff = got.astype(np.float64) - ref
            mse = float((diff ** 2).mean())
            quality[k]["mean_abs"].append(float(np.abs(diff).mean()))
            quality[k]["psnr"].append(10 * math.log10(255.0 ** 2 / mse) if mse else math.inf)
            quality[k]["ssim"].append(ssim(luma(got), luma(ref.astype(np.uint8))))

    bf16_ok, bf16_answer = bf16_conv_loads()
    result = {
        "tool": "scripts/precision_probe.py",
        "model": os.path.basename(a.model),
        "size": a.size,
        "threads": a.threads,
        "iterations": a.iterations,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "machine": platform.processor() or platform.machine(),
        "variants": {},
        "bf16_conv": {"runs": bf16_ok, "answer": bf16_answer},
    }
    for k in order:
        ratio = [t / b for t, b in zip(times[k], times["float32"])]
        result["variants"][k] = {
            "ms": interval(times[k]),
            "time_vs_float32": interval(ratio),
            "mean_abs_levels": float(np.mean(quality[k]["mean_abs"])),
            # null where the outputs are identical (float32 against itself): JSON has no ∞.
            "psnr_db_p50": finite(float(np.median(quality[k]["psnr"]))),
            "ssim_luma_mean": float(np.mean(quality[k]["ssim"])),
        }
        v = result["variants"][k]
        print(f"{k:11} {v['ms']['p50']:7.1f} ms  ×{v['time_vs_float32']['p50']:.2f} "
              f"[{v['time_vs_float32']['low']:.2f}, {v['time_vs_float32']['high']:.2f}] of float32"
              f"  |Δ| {v['mean_abs_levels']:.2f} levels  PSNR {v['psnr_db_p50'] or math.inf:.1f} dB"
              f"  SSIM {v['ssim_luma_mean']:.4f}")
    print(f"bf16 Conv on the CPU provider: {bf16_answer}")
    if a.out:
        existing = {}
        if os.path.exists(a.out):
            with open(a.out) as f:
                existing = json.load(f)
        existing[result["model"]] = result
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(existing, f, indent=1)
            f.write("\n")
        os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
