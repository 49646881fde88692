"""Reference StyleGAN generation in NumPy + ONNX Runtime, as the official gen_images.py and
style_mixing.py do it, for the engine tests to compare against.

  python generator_reference.py MAPPING SYNTHESIS SEEDS PSI OUT [--mix SEED LAYERS] [--class C]

SEEDS is a comma list; LAYERS a comma list of layer indices. Writes the float32 images
[len(SEEDS),3,H,W] (little-endian) to OUT, and the truncated ws to OUT.ws.
"""
import argparse

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mapping")
    p.add_argument("synthesis")
    p.add_argument("seeds")
    p.add_argument("psi", type=float)
    p.add_argument("out")
    p.add_argument("--mix", nargs=2)
    p.add_argument("--cls", type=int)
    a = p.parse_args()
    mapping = ort.InferenceSession(a.mapping, providers=["CPUExecutionProvider"])
    synthesis = ort.InferenceSession(a.synthesis, providers=["CPUExecutionProvider"])
    z_dim = mapping.get_inputs()[0].shape[1]
    num_ws = synthesis.get_inputs()[0].shape[1]
    names = [o.name for o in mapping.get_outputs()]
    meta = mapping.get_modelmeta().custom_metadata_map

    def ws_of(seed):
        z = np.random.RandomState(seed).randn(1, z_dim).astype(np.float32)
        feed = {"z": z}
        if a.cls is not None:
            c_dim = mapping.get_inputs()[1].shape[1]
            feed["c"] = np.eye(c_dim, dtype=np.float32)[[a.cls]]
        outs = dict(zip(names, mapping.run(None, feed)))
        w = outs["w"]
        if w.ndim == 2:
            w = np.repeat(w[:, None, :], num_ws, axis=1)
        if "w_avg" in outs:
            w_avg = outs["w_avg"]
        else:
            w_avg = np.array([float(v) for v in meta["stylegan.w_avg"].split(",")], np.float32)
        return w_avg + np.float32(a.psi) * (w - w_avg)

    ws = np.concatenate([ws_of(int(s)) for s in a.seeds.split(",")])
    if a.mix:
        layers = [int(v) for v in a.mix[1].split(",")]
        ws[:, layers] = ws_of(int(a.mix[0]))[:, layers]
    img = synthesis.run(None, {"ws": ws.astype(np.float32)})[0]
    img.astype("<f4").tofile(a.out)
    ws.astype("<f4").tofile(a.out + ".ws")


if __name__ == "__main__":
    main()
