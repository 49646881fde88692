#!/usr/bin/env python3
"""Build a small CLIP-shaped encoder pair with fixed random weights (no registry ships CLIP).

Same tensor interface as an OpenAI ViT-B/32 export (docs/prompts.md), so the Rust loader,
tokenizer, preprocessing and prompt tuner run unchanged on it:
  image.onnx  pixel_values float32 [B,3,224,224] -> image_embeds float32 [B,32], L2-normalised
              conv 8x8/8 -> ReLU -> conv 4x4/4 -> ReLU -> global mean and max pool -> centre -> linear
  text.onnx   input_ids int64 [B,77] -> text_embeds float32 [B,32], L2-normalised
              embedding lookup -> mean over non-padding tokens -> the image tower's linear
Idempotent: existing files are kept. Usage: make_clip_models.py OUT_DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DIM = 32
VOCAB = 49408
CONTEXT = 77
OPSET = 18
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def l2_normalise(nodes, src, out):
    nodes += [
        helper.make_node("ReduceL2", [src, "norm_axes"], ["norm"], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["norm_safe"]),
        helper.make_node("Div", [src, "norm_safe"], [out]),
    ]


def image_model(rng, proj):
    w1 = rng.normal(0, (3 * 64) ** -0.5, (16, 3, 8, 8)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 16).astype(np.float32)
    w2 = rng.normal(0, (16 * 16) ** -0.5, (32, 16, 4, 4)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 32).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["pixel_values", "w1", "b1"], ["c1"], strides=[8, 8]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[4, 4]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["avg"]),
        helper.make_node("GlobalMaxPool", ["r2"], ["max"]),
        helper.make_node("Concat", ["avg", "max"], ["pooled"], axis=1),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Sub", ["flat", "centre"], ["centred"]),
        helper.make_node("MatMul", ["centred", "proj"], ["embeds"]),
    ]
    l2_normalise(nodes, "embeds", "image_embeds")
    # Centre the pooled features on their mean over smooth random images (a fixed LayerNorm-
    # like shift): without it every image embeds near one direction and scores barely move.
    centre = pooled_mean(nodes[:7], [init("w1", w1), init("b1", b1), init("w2", w2),
                                     init("b2", b2)], rng)
    graph = helper.make_graph(
        nodes,
        "clip_image_small",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["B", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["B", DIM])],
        [
            init("w1", w1), init("b1", b1), init("w2", w2), init("b2", b2),
            init("proj", proj), init("centre", centre), init("norm_axes", np.array([1], np.int64)),
            init("eps", np.array(1e-12, np.float32)),
        ],
    )
    return graph


def pooled_mean(nodes, inits, rng):
    """Mean pooled feature of the image tower over 16 smooth random colour fields."""
    import onnxruntime as ort
    graph = helper.make_graph(
        nodes, "pooled",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["B", 3, 224, 224])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    coarse = rng.uniform(0, 1, (16, 3, 7, 7)).astype(np.float32)
    images = np.repeat(np.repeat(coarse, 32, axis=2), 32, axis=3)
    images = (images - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pooled = sess.run(None, {"pixel_values": images.astype(np.float32)})[0]
    return pooled.reshape(16, -1).mean(axis=0).astype(np.float32)


def text_model(rng, proj):
    # Token vectors live in the image tower's centred feature space and share its projection,
    # so prompts land where images can reach, as after CLIP's contrastive training.
    table = rng.normal(0, 0.5, (VOCAB, 64)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tok"], axis=0),  # [B,77,D]
        helper.make_node("Greater", ["input_ids", "zero_i64"], ["is_tok"]),
        helper.make_node("Cast", ["is_tok"], ["mask"], to=TensorProto.FLOAT),  # [B,77]
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),  # [B,D]
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=1),  # [B,1]
        helper.make_node("Max", ["count", "one"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["mean"]),  # [B,64]
        helper.make_node("MatMul", ["mean", "proj"], ["embeds"]),
    ]
    l2_normalise(nodes, "embeds", "text_embeds")
    graph = helper.make_graph(
        nodes,
        "clip_text_small",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", CONTEXT])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["B", DIM])],
        [
            init("table", table), init("proj", proj),
            init("zero_i64", np.array(0, np.int64)),
            init("axis1", np.array([1], np.int64)), init("axis2", np.array([2], np.int64)),
            init("norm_axes", np.array([1], np.int64)),
            init("one", np.array(1.0, np.float32)), init("eps", np.array(1e-12, np.float32)),
        ],
    )
    return graph


def save(graph, path):
    if os.path.exists(path):
        return
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path + ".part")
    os.replace(path + ".part", path)
    print(f"[make_clip_models] wrote {path}", file=sys.stderr)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # One generator per tower, fixed seeds: rebuilding gives the same bytes.
    proj = np.random.default_rng(1000).normal(0, 64 ** -0.5, (64, DIM)).astype(np.float32)
    save(image_model(np.random.default_rng(1001), proj), os.path.join(out, "small-image.onnx"))
    save(text_model(np.random.default_rng(1002), proj), os.path.join(out, "small-text.onnx"))


if __name__ == "__main__":
    main()
