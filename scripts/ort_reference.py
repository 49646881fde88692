"""Reference inference with ONNX Runtime in Python, for the engine's equivalence tests.

Reads a raw float32 [3,H,W] tensor, reflect-pads it to the model's size multiple (NumPy
`reflect`, as the engine documents), runs the model and writes the cropped [3,H,W] output.
The CIN conditioning is computed here from the model's own metadata, independently of the
Rust code: `--blend name:weight,...` (weights normalised). Arbitrary-style models take
`--embedding E.f32`. With `--predict` the model is a style predictor: IN is its [3,S,S]
input and OUT the embedding.

python ort_reference.py MODEL IN.f32 H W OUT.f32 [--blend SPEC] [--embedding F] [--predict]
"""
import argparse

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("height", type=int)
    p.add_argument("width", type=int)
    p.add_argument("output")
    p.add_argument("--blend", default="")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--embedding", default="")
    p.add_argument("--predict", action="store_true")
    a = p.parse_args()

    opts = ort.SessionOptions()
    if a.threads:
        opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    multiple = int(meta.get("stylize.size_multiple", "1"))

    x = np.fromfile(a.input, np.float32).reshape(3, a.height, a.width)
    if a.predict:
        y = sess.run(["style_embedding"], {"style": x[None]})[0]
        np.ascontiguousarray(y, np.float32).tofile(a.output)
        return
    ph = -a.height % multiple
    pw = -a.width % multiple
    x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")[None]
    feeds = {"content": x}
    if any(i.name == "style_weights" for i in sess.get_inputs()):
        names = meta["stylize.styles"].split(",")
        w = np.zeros(len(names), np.float32)
        for item in a.blend.split(","):
            name, weight = item.split(":")
            w[names.index(name)] += float(weight)
        feeds["style_weights"] = (w / w.sum()).astype(np.float32)
    if any(i.name == "style_embedding" for i in sess.get_inputs()):
        feeds["style_embedding"] = np.fromfile(a.embedding, np.float32).reshape(1, -1)
    y = sess.run(["stylized"], feeds)[0][0, :, : a.height, : a.width]
    np.ascontiguousarray(y, np.float32).tofile(a.output)


if __name__ == "__main__":
    main()
