#!/usr/bin/env python3
"""Temporal-stability and content metrics for `stylize bench quality` (JSON on stdout).

Inputs are raw RGB24 frame dumps (N frames of HxWx3, no header) written by the Rust side:
the decoded input clip and one stylized sequence per variant (stability value).

Metrics (per variant; frames as floats in 0..1):
- warping_error: mean over t of the occlusion-masked MSE between O_t and O_{t-1} warped to
  frame t by optical flow of the *input* frames (OpenCV Farneback, t -> t-1). The mask drops
  pixels failing the forward-backward consistency check and motion boundaries (Ruder et al.
  2016), and pixels warped from outside the frame. The same on the input itself is reported as
  `input_warping_error`, the floor that the flow's own errors leave.
- flicker_index: mean over t of (mean |O_t - O_{t-1}| - mean |I_t - I_{t-1}|) on luma: the
  frame-to-frame change the stylization adds on top of the scene's own change.
- ssim_content: mean SSIM (luma, Gaussian 11x11, sigma 1.5) of O_t to I_t: structure kept.
"""
import argparse
import json
import sys

import cv2
import numpy as np


def load(path, n, h, w):
    data = np.fromfile(path, dtype=np.uint8)
    if data.size != n * h * w * 3:
        sys.exit(f"{path}: {data.size} bytes, expected {n}x{h}x{w}x3")
    return data.reshape(n, h, w, 3)


def luma(frame):
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def farneback(a, b):
    """Flow field f with a(p) ~ b(p + f(p))."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)


def flows(inputs):
    """Per t >= 1: (map_x, map_y, mask) warping frame t-1 onto frame t."""
    h, w = inputs.shape[1:3]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    greys = [luma(f) for f in inputs]
    out = []
    for t in range(1, len(inputs)):
        back = farneback(greys[t], greys[t - 1])
        fwd = farneback(greys[t - 1], greys[t])
        mx, my = gx + back[..., 0], gy + back[..., 1]
        fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((back + fwd_at) ** 2, axis=2)
        mag = np.sum(back**2, axis=2) + np.sum(fwd_at**2, axis=2)
        consistent = err <= 0.01 * mag + 0.5
        du = np.gradient(back[..., 0])
        dv = np.gradient(back[..., 1])
        grad = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
        smooth = grad <= 0.01 * np.sum(back**2, axis=2) + 0.002
        inside = (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
        out.append((mx, my, consistent & smooth & inside))
    return out


def warping_error(frames, warps):
    errs = []
    for t, (mx, my, mask) in enumerate(warps, start=1):
        prev = frames[t - 1].astype(np.float32) / 255.0
        cur = frames[t].astype(np.float32) / 255.0
        warped = cv2.remap(prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sq = np.sum((cur - warped) ** 2, axis=2) / 3.0
        n = mask.sum()
        if n:
            errs.append(float(sq[mask].sum() / n))
    return float(np.mean(errs)) if errs else 0.0


def mean_change(frames):
    g = np.stack([luma(f) for f in frames]).astype(np.float32) / 255.0
    return np.abs(np.diff(g, axis=0)).mean(axis=(1, 2))


def ssim(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)
    ma, mb = blur(a), blur(b)
    va = blur(a * a) - ma * ma
    vb = blur(b * b) - mb * mb
    cov = blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--variant", action="append", default=[], help="NAME=PATH")
    a = p.parse_args()
    if a.frames < 2:
        sys.exit("need at least 2 frames")
    inputs = load(a.input, a.frames, a.height, a.width)
    warps = flows(inputs)
    input_change = mean_change(inputs)
    result = {
        "opencv": cv2.__version__,
        "flow": "Farneback (pyr 0.5, 4 levels, win 15), forward-backward + motion-boundary mask",
        "masked_fraction": float(np.mean([1.0 - m.mean() for _, _, m in warps])),
        "input_warping_error": warping_error(inputs, warps),
        "variants": {},
    }
    for spec in a.variant:
        name, path = spec.split("=", 1)
        out = load(path, a.frames, a.height, a.width)
        per_frame = [ssim(luma(o), luma(i)) for o, i in zip(out, inputs)]
        result["variants"][name] = {
            "warping_error": warping_error(out, warps),
            "flicker_index": float(np.mean(mean_change(out) - input_change)),
            "ssim_content": float(np.mean(per_frame)),
            "ssim_per_frame": [round(v, 4) for v in per_frame],
        }
    json.dump(result, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
