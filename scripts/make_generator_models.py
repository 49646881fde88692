"""Build small generator models with the real graph interfaces of `stylize generate`.

No registry ships StyleGAN or DALL·E weights, so the tests run on models built here with the
onnx helper API (no torch): the same inputs, outputs, shapes and metadata as the exports
described in docs/generation.md, with random weights from a fixed seed (so every machine builds
the same bytes). They are small so tests stay fast.

  stylegan/mapping.onnx        z [B,512] -> w [B,8,512], w_avg [512] (an initializer exposed
                               as an output)
  stylegan/mapping_cond.onnx   z [B,512], c [B,4] -> w [B,8,512]; w_avg in metadata
  stylegan/synthesis.onnx      ws [B,8,512] -> img [B,3,32,32] (modulated/demodulated convs,
                               layer i reads ws[:, i] only)
  dalle/transformer.onnx       input_ids [B,T] + past_key_values.{l}.{key,value} [B,H,P,D]
                               -> logits [B,T,V] + present.{l}.{key,value} [B,H,P+T,D]
  dalle/vqgan.onnx             image_tokens [B,16] -> img [B,3,32,32]

Usage: python make_generator_models.py OUT_DIR   (idempotent: existing outputs are kept).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization


class Graph:
    """Tiny builder: unique names, initializers, nodes."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.uid = [], [], 0

    def name(self, prefix):
        self.uid += 1
        return f"{prefix}_{self.uid}"

    def const(self, array, prefix="c", name=None):
        n = name or self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def ints(self, values):
        return self.const(np.array(values, np.int64), "i")

    def randn(self, shape, scale):
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), "w")

    def op(self, op_type, *inputs, out=None, **attrs):
        y = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [y], **attrs))
        return y

    def linear(self, x, cin, cout, bias=0.0):
        y = self.op("MatMul", x, self.randn((cin, cout), 1 / np.sqrt(cin)))
        return self.op("Add", y, self.const(np.full(cout, bias, np.float32), "b"))

    def lrelu(self, x):
        return self.op("LeakyRelu", x, alpha=0.2)

    def model(self, name, inputs, outputs, metadata):
        g = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        for key, value in metadata.items():
            entry = m.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(m)
        return m


def f32(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def i64(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.INT64, dims)


# ---------------------------------------------------------------- StyleGAN2/3 ---------------
Z_DIM = W_DIM = 512
NUM_WS = 8
C_DIM = 4
RES = 32
CH = 32


def normalize_2nd_moment(g, x):
    ms = g.op("ReduceMean", g.op("Mul", x, x), axes=[1], keepdims=1)
    return g.op("Mul", x, g.op("Reciprocal", g.op("Sqrt", g.op("Add", ms, g.const(np.float32(1e-8))))))


def mapping(conditional):
    """z (+ one-hot c) -> normalise -> 2 FC/lrelu -> w broadcast to NUM_WS layers."""
    g = Graph(1 if not conditional else 2)
    x = normalize_2nd_moment(g, "z")
    width = Z_DIM
    if conditional:
        y = g.op("MatMul", "c", g.randn((C_DIM, Z_DIM), 1.0))
        x = g.op("Concat", x, normalize_2nd_moment(g, y), axis=1)
        width = 2 * Z_DIM
    x = g.lrelu(g.linear(x, width, W_DIM))
    x = g.lrelu(g.linear(x, W_DIM, W_DIM))
    x = g.op("Unsqueeze", x, g.ints([1]))
    shape = g.op("Concat", g.op("Shape", "z", start=0, end=1), g.ints([NUM_WS, W_DIM]), axis=0)
    g.op("Expand", x, shape, out="w")
    inputs = [f32("z", ["batch", Z_DIM])]
    if conditional:
        inputs.append(f32("c", ["batch", C_DIM]))
    outputs = [f32("w", ["batch", NUM_WS, W_DIM])]
    meta = {"stylegan.num_ws": str(NUM_WS), "stylegan.source": "stylize test model (random)"}
    return g, inputs, outputs, meta


def with_w_avg(g, inputs, outputs, meta, as_output):
    """Estimate w_avg like the trainer's tracked average: mean w over many z (and classes)."""
    import onnxruntime as ort

    probe = g.model("mapping", inputs, outputs, meta)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    feed = {"z": rng.standard_normal((2000, Z_DIM)).astype(np.float32)}
    if len(inputs) > 1:
        feed["c"] = np.eye(C_DIM, dtype=np.float32)[rng.integers(0, C_DIM, 2000)]
    w_avg = sess.run(["w"], feed)[0][:, 0, :].mean(axis=0).astype(np.float32)
    if as_output:
        g.const(w_avg, name="w_avg_buffer")
        g.op("Identity", "w_avg_buffer", out="w_avg")
        outputs = outputs + [f32("w_avg", [W_DIM])]
    else:
        meta = dict(meta, **{"stylegan.w_avg": ",".join(f"{v:.9g}" for v in w_avg)})
    return g.model("mapping", inputs, outputs, meta)


def synthesis(traced_batch=None, declared_batch="batch"):
    """StyleGAN2-style synthesis: const 4x4, modulated+demodulated 3x3 convs, nearest x2
    upsampling, a modulated 1x1 toRGB. Layer i is styled by ws[:, i] alone, which is what
    makes per-layer style mixing meaningful (and testable).

    traced_batch=N: the same network with upstream's fused modulated convolution as tracing
    writes it (NVlabs' modulated_conv2d: per-sample weights, the batch folded into channels and
    one grouped convolution, `groups = batch` and the reshapes frozen at N, "treated as a
    constant"), so the graph runs only at batch N whatever batch it declares."""
    g = Graph(4)
    batch = g.op("Shape", "ws", start=0, end=1)
    x = g.op("Expand", g.randn((1, CH, 4, 4), 1.0), g.op("Concat", batch, g.ints([CH, 4, 4]), axis=0))

    def style(i, cin):
        w_i = g.op("Gather", "ws", g.const(np.int64(i)), axis=1)  # [B, 512]
        return g.linear(w_i, W_DIM, cin, bias=1.0)  # [B, cin], StyleGAN's bias_init=1

    def modconv(x, i, cin, cout, k, demod):
        s = style(i, cin)
        weight = (g.rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        if traced_batch is not None:
            return fused_modconv(x, s, weight, cout, cin, k, demod)
        x = g.op("Mul", x, g.op("Unsqueeze", s, g.ints([2, 3])))
        y = g.op("Conv", x, g.const(weight, "w"), pads=[k // 2] * 4)
        if demod:  # d = rsqrt(sum_{i,k} (w * s_i)^2) per sample and output channel
            wsq = g.const((weight ** 2).sum(axis=(2, 3)).T.copy(), "wsq")  # [cin, cout]
            d = g.op("MatMul", g.op("Mul", s, s), wsq)
            d = g.op("Reciprocal", g.op("Sqrt", g.op("Add", d, g.const(np.float32(1e-8)))))
            y = g.op("Mul", y, g.op("Unsqueeze", d, g.ints([2, 3])))
        return g.op("Add", y, g.const(np.zeros((1, cout, 1, 1), np.float32), "b"))

    def fused_modconv(x, s, weight, cout, cin, k, demod):
        n = traced_batch
        w = g.op("Mul", g.const(weight[None], "w"), g.op("Unsqueeze", s, g.ints([1, 3, 4])))
        if demod:
            d = g.op("ReduceSum", g.op("Mul", w, w), g.ints([2, 3, 4]), keepdims=1)
            d = g.op("Reciprocal", g.op("Sqrt", g.op("Add", d, g.const(np.float32(1e-8)))))
            w = g.op("Mul", w, d)
        h = g.op("Shape", x, start=2)
        x = g.op("Reshape", x, g.op("Concat", g.ints([1, n * cin]), h, axis=0))
        w = g.op("Reshape", w, g.ints([n * cout, cin, k, k]))
        y = g.op("Conv", x, w, group=n, pads=[k // 2] * 4)
        y = g.op("Reshape", y, g.op("Concat", g.ints([n, cout]), h, axis=0))
        return g.op("Add", y, g.const(np.zeros((1, cout, 1, 1), np.float32), "b"))

    def up(x):
        scales = g.const(np.array([1, 1, 2, 2], np.float32), "scales")
        return g.op("Resize", x, "", scales, mode="nearest")

    layer = 0
    x = g.lrelu(modconv(x, layer, CH, CH, 3, True))
    layer += 1
    res = 4
    while res < RES:
        x = g.lrelu(modconv(up(x), layer, CH, CH, 3, True))
        x = g.lrelu(modconv(x, layer + 1, CH, CH, 3, True))
        layer += 2
        res *= 2
    assert layer == NUM_WS - 1
    rgb = modconv(x, layer, CH, 3, 1, False)
    g.op("Mul", rgb, g.const(np.float32(5.0)), out="img")
    meta = {"stylegan.num_ws": str(NUM_WS), "stylegan.source": "stylize test model (random)"}
    return g.model("synthesis", [f32("ws", [declared_batch, NUM_WS, W_DIM])],
                   [f32("img", [declared_batch, 3, RES, RES])], meta)


# ---------------------------------------------------------------- DALL·E-style --------------
TEXT_VOCAB = 260  # 256 UTF-8 bytes, then PAD=256, BOS=257, EOS=258 (259 unused)
IMAGE_VOCAB = 32
TEXT_LEN = 16
GRID = 4  # 4x4 image tokens
D_MODEL, HEADS, LAYERS = 64, 4, 2
HEAD_DIM = D_MODEL // HEADS


def transformer():
    """Decoder-only transformer over [text tokens | image tokens] with a KV cache.

    Positions come from the cache length P, so the same graph serves the prompt (P = 0) and
    each decoding step (T = 1); the causal mask allows key j for query i iff j <= P + i."""
    g = Graph(5)
    vocab = TEXT_VOCAB + IMAGE_VOCAB
    seq = TEXT_LEN + GRID * GRID
    tok = g.op("Gather", g.randn((vocab, D_MODEL), 1.0), "input_ids", axis=0)  # [B,T,d]
    past_len = g.op("Shape", "past_key_values.0.key", start=2, end=3)  # [1]
    new_len = g.op("Shape", "input_ids", start=1, end=2)
    p0 = g.op("Squeeze", past_len)
    total = g.op("Squeeze", g.op("Add", past_len, new_len))
    one = g.const(np.int64(1))
    q_pos = g.op("Range", p0, total, one)  # [T]
    k_pos = g.op("Range", g.const(np.int64(0)), total, one)  # [P+T]
    x = g.op("Add", tok, g.op("Gather", g.randn((seq, D_MODEL), 0.5), q_pos, axis=0))
    allowed = g.op("Not", g.op("Greater", g.op("Unsqueeze", k_pos, g.ints([0])),
                                g.op("Unsqueeze", q_pos, g.ints([1]))))  # [T, P+T]

    def ln(x):
        return g.op("LayerNormalization", x, g.const(np.ones(D_MODEL, np.float32)),
                    g.const(np.zeros(D_MODEL, np.float32)), axis=-1, epsilon=1e-5)

    def heads(x):  # [B,T,d] -> [B,H,T,hd]
        return g.op("Transpose", g.op("Reshape", x, g.ints([0, 0, HEADS, HEAD_DIM])), perm=[0, 2, 1, 3])

    inputs = [i64("input_ids", ["batch", "tokens"])]
    outputs = [f32("logits", ["batch", "tokens", vocab])]
    for layer in range(LAYERS):
        pk, pv = f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"
        inputs += [f32(pk, ["batch", HEADS, "past", HEAD_DIM]), f32(pv, ["batch", HEADS, "past", HEAD_DIM])]
        outputs += [f32(f"present.{layer}.key", ["batch", HEADS, "total", HEAD_DIM]),
                    f32(f"present.{layer}.value", ["batch", HEADS, "total", HEAD_DIM])]
        h = ln(x)
        q = heads(g.linear(h, D_MODEL, D_MODEL))
        k = g.op("Concat", pk, heads(g.linear(h, D_MODEL, D_MODEL)), axis=2, out=f"present.{layer}.key")
        v = g.op("Concat", pv, heads(g.linear(h, D_MODEL, D_MODEL)), axis=2, out=f"present.{layer}.value")
        scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                      g.const(np.float32(1 / np.sqrt(HEAD_DIM))))
        scores = g.op("Where", allowed, scores, g.const(np.float32(-1e9)))
        att = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)  # [B,H,T,hd]
        att = g.op("Reshape", g.op("Transpose", att, perm=[0, 2, 1, 3]), g.ints([0, 0, D_MODEL]))
        x = g.op("Add", x, g.linear(att, D_MODEL, D_MODEL))
        h = g.linear(ln(x), D_MODEL, 4 * D_MODEL)
        h = g.op("Mul", h, g.op("Sigmoid", g.op("Mul", h, g.const(np.float32(1.702)))))  # GELU
        x = g.op("Add", x, g.linear(h, 4 * D_MODEL, D_MODEL))
    # Scaled up so the test model's distributions are peaked enough to make top-k matter.
    g.op("MatMul", ln(x), g.randn((D_MODEL, vocab), 3 / np.sqrt(D_MODEL)), out="logits")
    meta = {
        "dalle.text_vocab": str(TEXT_VOCAB),
        "dalle.image_vocab": str(IMAGE_VOCAB),
        "dalle.text_len": str(TEXT_LEN),
        "dalle.image_tokens": str(GRID * GRID),
        "dalle.tokenizer": "bytes",
        "dalle.pad_id": "256",
        "dalle.bos_id": "257",
        "dalle.eos_id": "258",
        "dalle.source": "stylize test model (random)",
    }
    return g.model("transformer", inputs, outputs, meta)


def vq_decoder():
    """Codebook lookup -> [B,e,4,4] -> 3 x (nearest x2 + conv) -> RGB in [-1,1] (tanh)."""
    g = Graph(6)
    emb = 16
    x = g.op("Gather", g.randn((IMAGE_VOCAB, emb), 1.0), "image_tokens", axis=0)  # [B,N,e]
    x = g.op("Reshape", x, g.ints([0, GRID, GRID, emb]))
    x = g.op("Transpose", x, perm=[0, 3, 1, 2])
    cin = emb
    for cout in (32, 32, 16):
        x = g.op("Resize", x, "", g.const(np.array([1, 1, 2, 2], np.float32)), mode="nearest")
        w = g.randn((cout, cin, 3, 3), 1 / np.sqrt(cin * 9))
        x = g.op("Relu", g.op("Conv", x, w, g.const(np.zeros(cout, np.float32)), pads=[1, 1, 1, 1]))
        cin = cout
    x = g.op("Conv", x, g.randn((3, cin, 1, 1), 1 / np.sqrt(cin)), g.const(np.zeros(3, np.float32)))
    g.op("Tanh", x, out="img")
    meta = {"dalle.grid": str(GRID), "dalle.source": "stylize test model (random)"}
    side = GRID * 8
    return g.model("vqgan", [i64("image_tokens", ["batch", GRID * GRID])],
                   [f32("img", ["batch", 3, side, side])], meta)


def save(model, path):
    tmp = path + ".part"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)


def main():
    out = sys.argv[1]
    builders = {
        "stylegan/mapping.onnx": lambda: with_w_avg(*mapping(False), as_output=True),
        "stylegan/mapping_cond.onnx": lambda: with_w_avg(*mapping(True), as_output=False),
        "stylegan/synthesis.onnx": synthesis,
        # The same weights, traced at batch 1: declaring a dynamic batch (what the export
        # recipe's dynamic_axes write) and declaring batch 1 (an export without them).
        "stylegan/synthesis_traced_b1.onnx": lambda: synthesis(traced_batch=1),
        "stylegan/synthesis_fixed_b2.onnx": lambda: synthesis(traced_batch=2, declared_batch=2),
        "dalle/transformer.onnx": transformer,
        "dalle/vqgan.onnx": vq_decoder,
    }
    for rel, build in builders.items():
        path = os.path.join(out, rel)
        if os.path.exists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save(build(), path)


if __name__ == "__main__":
    main()
