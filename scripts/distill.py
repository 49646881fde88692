#!/usr/bin/env python3
"""Distil a fast student from a conditional-instance-norm (CIN) style net (issue 14).

The teacher (an ONNX model under the stylize contract, e.g. assets/models/multistyle26.onnx)
runs under ONNX Runtime once, on a cache of augmented crops; a small CIN student (PyTorch, CPU)
is trained to reproduce its output for every style and for blends, then written out as an
ONNX model with the teacher's tensor names and metadata, so the engine loads it unchanged.

Stages (each resumable; `all` runs cache, train, finetune, export, eval, skipping what is done):
  cache     teacher outputs for augmented crops: the base data -> CACHE/chunk-*.npz, the extra
            data (fine-tune) -> EXTRA_CACHE/chunk-*.npz
  train     student on the base cache, checkpoint every --ckpt-every steps -> CACHE/student.pt
  finetune  from train's checkpoint (or --init, a student ONNX): whole crops of both caches,
            colour-layout term, more samples of --focus-styles -> CHECKPOINTS/student-finetune.pt
  export    ONNX with dynamic H/W, teacher metadata + provenance          -> --out
  eval      fidelity on the held-out clip vs the teacher and the half-size teacher -> --report
  bench     ONNX Runtime latency, teacher vs student interleaved (also in eval) -> --report
  bench-element  the same through the Rust engine and the element (`stylize bench`) -> --report
  stretches colour ΔE over the whole held-out clip in six stretches (closest styles) -> --report
  table     the report's markdown tables (docs/distill.md, models/MANIFEST.md)

One command re-trains the shipped model (see docs/distill.md):
  nice -n 19 /work/torch-venv/bin/python scripts/distill.py all

PyTorch is needed for `train`, `finetune` and `export` only; `cache`, `eval`, `bench`,
`bench-element` and `table` run with assets/venv (onnxruntime, numpy, opencv). Torch never
enters scripts/test or CI.
"""
import argparse
import glob
import hashlib
import json
import os
import platform
import sys
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_metrics import flows, ssim, warping_error  # noqa: E402

# Training media: clips and photos scripts/setup fetches. vtest.avi is held out for `eval`.
TRAIN_CLIPS = ["media/bigbuckbunny.mp4", "media/bikes.mp4"]
TRAIN_PHOTOS = ["images/astronaut.png", "images/chelsea.png", "images/coffee.png"]
HELD_OUT_CLIP = "media/vtest.avi"
# Extra media for the fine-tune phase (its own cache): more scenes and colours than the two
# clips, from the same Debian opencv-doc package as vtest.avi (other files; scripts/setup puts
# them in assets/media and assets/images/opencv).
EXTRA_CLIPS = ["media/Megamind.avi", "media/tree.avi"]
EXTRA_PHOTOS = [f"images/opencv/{n}" for n in (
    "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png",
    "building.jpg", "butterfly.jpg", "chicky_512.png", "fruits.jpg", "graf1.png", "home.jpg",
    "leuvenA.jpg", "messi5.jpg", "orange.jpg", "plant.jpg", "rubberwhale1.png", "smarties.png",
    "squirrel_cls.jpg")]

# Fine-tune phases after `train` (docs/distill.md), each from the previous weights: steps, peak
# learning rate, and focus: styles whose samples are drawn `factor` times as often (the ones
# whose colour layout the student matched worst; pastel-wash the worst of them).
FINETUNE = [
    {"steps": 1200, "lr": 1e-3, "focus": "pastel-wash:3,red-ochre:3,pastel-sketch:3,frosted:3,ink-wash:3"},
    {"steps": 400, "lr": 3e-4, "focus": "pastel-wash:8,red-ochre:3,pastel-sketch:3,frosted:3,ink-wash:3"},
]

# Student shape (channels per stage, residual blocks); see docs/distill.md for the MAC count.
ARCH = {"stem": 16, "mid": 32, "blocks": 4, "up": 16, "up_mode": "resize", "skip": False}


def log(msg):
    print(f"[distill {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path, write):
    """write(tmp_path), then rename over `path` (never leaves a half-written file)."""
    tmp = f"{path}.part"
    write(tmp)
    os.replace(tmp, path)


def session(model, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def style_names(model_path):
    meta = {p.key: p.value for p in onnx.load(model_path, load_external_data=False).metadata_props}
    return meta["stylize.styles"].split(",")


def run_net(sess, rgb01, weights):
    """rgb01: HxWx3 float32 0..1 -> HxWx3 float32 (cropped to the input size)."""
    h, w = rgb01.shape[:2]
    x = np.ascontiguousarray(rgb01.transpose(2, 0, 1)[None], np.float32)
    y = sess.run(["stylized"], {"content": x, "style_weights": weights.astype(np.float32)})[0]
    return y[0, :, :h, :w].transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------
# Data: decoded frames, augmentation, teacher cache.


def read_frames(path, step=1, limit=None, size=None):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        sys.exit(f"{path}: cannot open")
    frames, i = [], 0
    while limit is None or len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if size is not None:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            frames.append(rgb)
        i += 1
    cap.release()
    return frames


def training_images(assets, clips, photos, clip_step=3, photo_weight=8):
    """Every clip_step-th frame of the clips, and each photo photo_weight times."""
    images = []
    for clip in clips:
        images += read_frames(os.path.join(assets, clip), step=clip_step)
    for photo in photos:
        bgr = cv2.imread(os.path.join(assets, photo), cv2.IMREAD_COLOR)
        if bgr is None:
            sys.exit(f"{photo}: cannot read (run scripts/setup)")
        images += [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)] * photo_weight
    return images


def jitter(rgb, rng):
    """Brightness, contrast, saturation and hue jitter on a uint8 RGB crop."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.7, 1.3)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.75, 1.25) + mean * rng.uniform(0.75, 1.25)
    return np.clip(out, 0, 255).astype(np.uint8)


def sample_weights(rng, n_styles, index):
    """Mostly one-hot (styles in turn, so each is seen equally), a quarter blends of 2-3."""
    w = np.zeros(n_styles, np.float32)
    if rng.uniform() < 0.75:
        w[index % n_styles] = 1.0
    else:
        k = rng.integers(2, 4)
        picks = rng.choice(n_styles, size=k, replace=False)
        w[picks] = rng.dirichlet(np.ones(k)).astype(np.float32)
    return w


def augmented_crop(images, rng, crop):
    """A crop x crop patch covering 15-100 % of a random image's short side, maybe flipped,
    colour-jittered."""
    img = images[rng.integers(len(images))]
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.15, 1.0))
    side = max(side, min(crop, min(h, w)))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    patch = cv2.resize(img[y:y + side, x:x + side], (crop, crop), interpolation=cv2.INTER_AREA)
    if rng.uniform() < 0.5:
        patch = patch[:, ::-1]
    return jitter(np.ascontiguousarray(patch), rng)


def fill_cache(a, cache, images, samples, stream):
    """Teacher outputs for `samples` augmented crops of `images`, in chunks (a complete chunk is
    kept on resume). Sample i depends only on (seed, stream, i)."""
    os.makedirs(cache, exist_ok=True)
    names = style_names(a.teacher)
    sess = session(a.teacher, a.threads)
    log(f"{cache}: {len(images)} training images, {samples} samples of {a.crop}px in chunks of {a.chunk}")
    t0 = time.time()
    for c in range(0, samples, a.chunk):
        path = os.path.join(cache, f"chunk-{c // a.chunk:04d}.npz")
        if os.path.exists(path):
            continue
        xs, ys, ws = [], [], []
        for i in range(c, min(c + a.chunk, samples)):
            rng = np.random.default_rng([a.seed, i] if stream is None else [a.seed, stream, i])
            x = augmented_crop(images, rng, a.crop)
            wv = sample_weights(rng, len(names), i)
            y = run_net(sess, x.astype(np.float32) / 255.0, wv)
            xs.append(x)
            ys.append(np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8))
            ws.append(wv)
        atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), x=np.stack(xs), y=np.stack(ys), w=np.stack(ws)))
        done = min(c + a.chunk, samples)
        log(f"cache {done}/{samples} ({time.time() - t0:.0f} s)")


def cmd_cache(a):
    """The base cache (the two clips and three photos, for `train`) and the extra cache (the
    opencv-doc clips and photos, used with the base one by `finetune`)."""
    fill_cache(a, a.cache, training_images(a.assets, TRAIN_CLIPS, TRAIN_PHOTOS), a.samples, None)
    if a.finetune_phases > 0 and a.extra_samples > 0:
        extra = training_images(a.assets, EXTRA_CLIPS, EXTRA_PHOTOS, clip_step=4, photo_weight=4)
        fill_cache(a, a.extra_cache, extra, a.extra_samples, 1)


def load_cache(cache):
    chunks = sorted(glob.glob(os.path.join(cache, "chunk-*.npz")))
    if not chunks:
        sys.exit(f"{cache}: no cached teacher outputs (run `cache` first)")
    xs, ys, ws = [], [], []
    for path in chunks:
        d = np.load(path)
        xs.append(d["x"])
        ys.append(d["y"])
        ws.append(d["w"])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


# ---------------------------------------------------------------------------------------------
# Student (PyTorch), its losses and training.


def torch_student(n_styles, arch):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CIN(nn.Module):
        """Instance norm whose scale and shift are the style weights times per-style rows, as
        in the teacher: a blend of styles blends the rows."""

        def __init__(self, ch):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(n_styles, ch))
            self.beta = nn.Parameter(torch.zeros(n_styles, ch))

        def forward(self, x, w):
            g = (w @ self.gamma)[:, :, None, None]
            b = (w @ self.beta)[:, :, None, None]
            return F.instance_norm(x, eps=1e-5) * g + b

    class SepConv(nn.Module):
        """Depthwise 3x3 + pointwise 1x1 (no bias: a CIN follows)."""

        def __init__(self, cin, cout):
            super().__init__()
            self.dw = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
            self.pw = nn.Conv2d(cin, cout, 1, bias=False)

        def forward(self, x):
            return self.pw(self.dw(x))

    class Student(nn.Module):
        def __init__(self):
            super().__init__()
            s, m, u = arch["stem"], arch["mid"], arch["up"]
            self.stem = nn.Conv2d(3, s, 5, stride=2, padding=2, bias=False)
            self.stem_n = CIN(s)
            self.down = nn.Conv2d(s, m, 3, stride=2, padding=1, bias=False)
            self.down_n = CIN(m)
            self.res = nn.ModuleList()
            for _ in range(arch["blocks"]):
                self.res.append(nn.ModuleList([SepConv(m, m), CIN(m), SepConv(m, m), CIN(m)]))
            if arch["up_mode"] == "d2s":  # 1x1 to 4u channels at 1/4, DepthToSpace: no Resize
                self.up_expand = nn.Conv2d(m, 4 * u, 1, bias=False)
                self.up = SepConv(u, u)
            else:
                self.up = SepConv(m, u)
            self.up_n = CIN(u)
            self.head = nn.Conv2d(u, 12, 3, padding=1)  # 12 = 3 colours x 2x2 sub-pixels
            if arch["skip"]:
                self.skip = nn.Conv2d(3, 3, 3, padding=1)  # full-resolution edges of the content

        def forward(self, x, w):
            h = F.relu(self.stem_n(self.stem(x), w))
            h = F.relu(self.down_n(self.down(h), w))
            for c1, n1, c2, n2 in self.res:
                h = h + n2(c2(F.relu(n1(c1(h), w))), w)
            if arch["up_mode"] == "d2s":
                h = F.pixel_shuffle(self.up_expand(h), 2)
            else:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.relu(self.up_n(self.up(h), w))
            y = F.pixel_shuffle(self.head(h), 2)
            if arch["skip"]:
                y = y + self.skip(x)
            return torch.sigmoid(y)

    return Student()


def laplacian(x):
    """4-neighbour Laplacian by shifted slices (a grouped conv is several times slower on the
    CPU, forward and backward)."""
    import torch.nn.functional as F

    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:] - 4 * x


def losses(student, teacher, a, w_layout=0.0):
    """L1 + local high-pass energy (mean |Laplacian| in 4x4 and 8x8 cells: a blurred student
    cannot match it) + per-channel mean/std (colour); with w_layout (the fine-tune phase) also
    the colour layout: L1 between the 8x8- and 16x16-cell means."""
    import torch.nn.functional as F

    l1 = (student - teacher).abs().mean()
    ls, lt = laplacian(student).abs(), laplacian(teacher).abs()
    hp = sum((F.avg_pool2d(ls, k) - F.avg_pool2d(lt, k)).abs().mean() for k in (4, 8))
    ms, mt = student.mean((2, 3)), teacher.mean((2, 3))
    ss, st = student.std((2, 3)), teacher.std((2, 3))
    stat = (ms - mt).abs().mean() + (ss - st).abs().mean()
    total = l1 + a.w_detail * hp + a.w_colour * stat
    parts = {"l1": l1.item(), "detail": hp.item(), "colour": stat.item()}
    if w_layout:
        layout = sum((F.avg_pool2d(student, k) - F.avg_pool2d(teacher, k)).abs().mean() for k in (8, 16))
        total = total + w_layout * layout
        parts["layout"] = layout.item()
    return total, parts


def learning_rate(a, step):
    """Warm-up (50 steps), constant, then linear decay to 5 % over the last quarter: a run can
    be resumed with a larger --steps until its decay has begun."""
    decay_from = 0.75 * a.steps
    if step < 50:
        return a.lr * (step + 1) / 50
    if step < decay_from:
        return a.lr
    return a.lr * (1 - 0.95 * (step - decay_from) / (a.steps - decay_from))


def finetune_learning_rate(lr, steps, step):
    """Fine-tune phase: 50-step warm-up (fresh Adam moments), then linear decay to 5 %."""
    if step < 50:
        return lr * (step + 1) / 50
    return lr * (1 - 0.95 * (step - 50) / max(1, steps - 50))


def fit(a, net, opt, ckpt, state, total_steps, batch_of, lr_of, w_layout):
    """The resumable loop of `train` and `finetune`: batch_of(step) -> (x, y, w) tensors (the
    batch of step k depends only on the seed and k), lr_of(step); a checkpoint every
    --ckpt-every steps; SIGTERM/SIGINT finish the step, save and stop (the same command
    resumes)."""
    import signal

    import torch

    step, spent = state["step"], state["seconds"]

    def save():
        atomic_write(ckpt, lambda tmp: torch.save(
            dict(state, net=net.state_dict(), opt=opt.state_dict(), step=step, seconds=spent), tmp))

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    running, start_step, t_start = {}, step, time.time()
    while step < total_steps and not stop:
        lr = lr_of(step)
        for group in opt.param_groups:
            group["lr"] = float(lr)
        x, y, w = batch_of(step)
        t0 = time.time()
        out = net(x, w)
        loss, parts = losses(out, y, a, w_layout)
        opt.zero_grad()
        loss.backward()
        opt.step()
        spent += time.time() - t0
        step += 1
        for k, v in parts.items():
            running[k] = running.get(k, v) * 0.95 + v * 0.05
        if step % a.log_every == 0 or step == total_steps:
            per_step = (time.time() - t_start) / (step - start_step)  # wall, this run
            log(f"step {step}/{total_steps} lr {lr:.2e} " + " ".join(f"{k} {v:.4f}" for k, v in running.items())
                + f" | {spent:.0f} s, {per_step:.2f} s/step, ETA {(total_steps - step) * per_step / 60:.1f} min")
        if step % a.ckpt_every == 0 or step == total_steps or stop:
            save()
    log(f"{'stopped at' if stop else 'trained'} {step}/{total_steps} steps, {spent / 60:.1f} min of compute")
    return step >= total_steps


def windows(xs, ys, ws, idx, crop, rng):
    """The same random aligned crop x crop window of content and teacher output for samples
    idx, as torch tensors."""
    import torch

    oy, ox = rng.integers(0, xs.shape[1] - crop + 1, size=2) // 4 * 4
    x = torch.from_numpy(xs[idx, oy:oy + crop, ox:ox + crop]).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(ys[idx, oy:oy + crop, ox:ox + crop]).permute(0, 3, 1, 2).float() / 255.0
    return x, y, torch.from_numpy(ws[idx])


def cmd_train(a):
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xs, ys, ws = load_cache(a.cache)
    n_styles = ws.shape[1]
    log(f"{len(xs)} cached samples, {n_styles} styles")
    net = torch_student(n_styles, ARCH)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    ckpt = os.path.join(a.cache, "student.pt")
    state = {"step": 0, "seconds": 0.0, "arch": ARCH, "n_styles": n_styles}
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state.pop("net"))
        opt.load_state_dict(state.pop("opt"))
        log(f"resumed at step {state['step']} ({state['seconds']:.0f} s trained)")

    def batch_of(step):
        rng = np.random.default_rng([a.seed, 1 << 20, step])
        idx = rng.choice(len(xs), size=a.batch, replace=False)
        # A random --train-crop window: a smaller window makes a step cheaper (CPU time is the
        # budget); the teacher still saw the whole crop.
        return windows(xs, ys, ws, idx, a.train_crop, rng)

    fit(a, net, opt, ckpt, state, a.steps, batch_of, lambda step: learning_rate(a, step), 0.0)


def student_weights_from_onnx(path, net):
    """The trained weights of a student ONNX written by build_onnx (its initializers carry the
    torch parameter names), as a state dict for `net`."""
    import torch

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    state = {}
    for name, param in net.state_dict().items():
        if name not in inits or tuple(inits[name].shape) != tuple(param.shape):
            sys.exit(f"{path}: no initializer {name} of shape {tuple(param.shape)}: not a student of this ARCH")
        state[name] = torch.from_numpy(np.array(inits[name]))
    return state


def finetune_sampling(ws, names, focus, default_weight):
    """Sampling probability of each cached sample: a sample's weight on a focus style counts
    that style's factor times (styles whose colour layout needs more samples). focus:
    "style[:factor],..." (factor default_weight when not given)."""
    p = np.ones(len(ws))
    for item in filter(None, focus.split(",")):
        name, _, factor = item.partition(":")
        p += (float(factor or default_weight) - 1.0) * ws[:, names.index(name)]
    return p / p.sum()


def cmd_finetune(a):
    """The FINETUNE phases after `train`: each from the previous one's weights (the first from
    `train`'s checkpoint, or --init, a student ONNX of this ARCH), fresh Adam moments, whole
    crops of the base and the extra cache, the colour-layout term."""
    import torch

    phases = FINETUNE[:a.finetune_phases]
    if not phases:
        return log("no fine-tune phase (--finetune-phases 0)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    parts = [load_cache(a.cache)] + ([load_cache(a.extra_cache)] if a.extra_samples else [])
    xs, ys, ws = (np.concatenate([p[k] for p in parts]) for k in range(3))
    del parts
    n_styles = ws.shape[1]
    names = style_names(a.teacher)
    log(f"{len(xs)} cached samples, {n_styles} styles")
    for k, phase in enumerate(phases):
        ckpt = finetune_checkpoint(a, k)
        net = torch_student(n_styles, ARCH)
        if os.path.exists(ckpt):
            state = torch.load(ckpt, weights_only=False)
            if state["step"] >= phase["steps"]:
                continue
            net.load_state_dict(state.pop("net"))
            opt = torch.optim.Adam(net.parameters(), lr=phase["lr"])
            opt.load_state_dict(state.pop("opt"))
            log(f"phase {k + 1}: resumed at step {state['step']} ({state['seconds']:.0f} s trained)")
        else:
            if k > 0:
                prev = torch.load(finetune_checkpoint(a, k - 1), weights_only=False)
                net.load_state_dict(prev["net"])
                base = {"init": f"fine-tune phase {k}", "base_seconds": None}
            elif a.init:
                net.load_state_dict(student_weights_from_onnx(a.init, net))
                base = {"init": os.path.basename(a.init), "init_sha256": sha256(a.init), "base_seconds": None}
            else:
                base_ckpt = torch.load(os.path.join(a.cache, "student.pt"), weights_only=False)
                if base_ckpt["step"] != a.steps:
                    sys.exit(f"student.pt is at step {base_ckpt['step']}, not --steps {a.steps}: "
                             "finish `train` first (or pass --init)")
                net.load_state_dict(base_ckpt["net"])
                base = {"init": f"student.pt step {a.steps}", "base_seconds": base_ckpt["seconds"]}
            opt = torch.optim.Adam(net.parameters(), lr=phase["lr"])
            state = dict(base, step=0, seconds=0.0, arch=ARCH, n_styles=n_styles, phase=phase)
        probs = finetune_sampling(ws, names, phase["focus"], 1.0)
        log(f"phase {k + 1}/{len(phases)}: {phase}")

        def batch_of(step):
            rng = np.random.default_rng([a.seed, 2 << 20, step])
            idx = np.sort(rng.choice(len(xs), size=a.finetune_batch, replace=False, p=probs))
            return windows(xs, ys, ws, idx, a.finetune_crop, rng)

        lr_of = lambda step: finetune_learning_rate(phase["lr"], phase["steps"], step)  # noqa: E731
        if not fit(a, net, opt, ckpt, state, phase["steps"], batch_of, lr_of, a.w_layout):
            return  # stopped by a signal: the same command resumes


def finetune_checkpoint(a, k):
    return os.path.join(a.checkpoints, f"student-finetune-{k + 1}.pt")


# ---------------------------------------------------------------------------------------------
# ONNX export: written node by node, so the graph is exactly the ops measured fast under ONNX
# Runtime here (InstanceNormalization, grouped Conv, Resize nearest, DepthToSpace) and needs no
# exporter beyond the onnx package.


class GraphBuilder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32)
                                                  if np.asarray(array).dtype.kind == "f" else np.asarray(array), name))
        return name

    def op(self, op_type, inputs, **attrs):
        self.n += 1
        out = f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self.n}_{op_type}", **attrs))
        return out


def build_onnx(params, arch, n_styles, names, meta):
    """params: name -> numpy array (the torch state_dict)."""
    g = GraphBuilder()
    w_row = g.op("Unsqueeze", ["style_weights", g.const("axes0", np.array([0], np.int64))])
    shape_c = g.const("shape_c", np.array([-1], np.int64))

    def conv(x, prefix, stride=1, group=1, bias=True):
        w = params[prefix + ".weight"]
        inputs = [x, g.const(prefix + ".weight", w)]
        if bias and prefix + ".bias" in params:
            inputs.append(g.const(prefix + ".bias", params[prefix + ".bias"]))
        k = w.shape[2]
        return g.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                    pads=[k // 2] * 4, group=group)

    def cin(x, prefix):
        # The style's scale and shift (style_weights @ rows, [C]) are InstanceNormalization's
        # own scale and bias inputs: one pass over the tensor instead of three (norm, Mul, Add).
        gam = g.op("Reshape", [g.op("MatMul", [w_row, g.const(prefix + ".gamma", params[prefix + ".gamma"])]), shape_c])
        bet = g.op("Reshape", [g.op("MatMul", [w_row, g.const(prefix + ".beta", params[prefix + ".beta"])]), shape_c])
        return g.op("InstanceNormalization", [x, gam, bet], epsilon=1e-5)

    def sep(x, prefix):
        ch = params[prefix + ".dw.weight"].shape[0]
        return conv(conv(x, prefix + ".dw", group=ch), prefix + ".pw")

    h = g.op("Relu", [cin(conv("content", "stem", stride=2), "stem_n")])
    h = g.op("Relu", [cin(conv(h, "down", stride=2), "down_n")])
    for i in range(arch["blocks"]):
        r = g.op("Relu", [cin(sep(h, f"res.{i}.0"), f"res.{i}.1")])
        h = g.op("Add", [h, cin(sep(r, f"res.{i}.2"), f"res.{i}.3")])
    if arch["up_mode"] == "d2s":
        h = g.op("DepthToSpace", [conv(h, "up_expand")], blocksize=2, mode="CRD")
    else:
        h = g.op("Resize", [h, "", g.const("scale2", np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    h = g.op("Relu", [cin(sep(h, "up"), "up_n")])
    y = g.op("DepthToSpace", [conv(h, "head")], blocksize=2, mode="CRD")
    if arch["skip"]:
        y = g.op("Add", [y, conv("content", "skip")])
    g.nodes.append(helper.make_node("Sigmoid", [y], ["stylized"], name="out_Sigmoid"))

    graph = helper.make_graph(
        g.nodes, "stylize_fast_student",
        [helper.make_tensor_value_info("content", TensorProto.FLOAT, [1, 3, "h", "w"]),
         helper.make_tensor_value_info("style_weights", TensorProto.FLOAT, [n_styles])],
        [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, "h", "w"])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="stylize scripts/distill.py")
    model.ir_version = 8
    props = {"stylize.family": "cin", "stylize.input_range": "0-1", "stylize.size_multiple": "4",
             "stylize.styles": ",".join(names)}
    props.update(meta)
    for k, v in props.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(model)
    return model


def macs_per_pixel(arch):
    """Multiply-accumulates per output pixel of the student (convolutions only)."""
    s, m, u = arch["stem"], arch["mid"], arch["up"]
    sep = lambda ci, co: ci * 9 + ci * co
    up = m * 4 * u / 16 + sep(u, u) / 4 if arch["up_mode"] == "d2s" else sep(m, u) / 4
    return (3 * s * 25 / 4 + s * m * 9 / 16 + arch["blocks"] * 2 * sep(m, m) / 16
            + up + u * 12 * 9 / 4 + (3 * 3 * 9 if arch["skip"] else 0))


def teacher_macs_per_pixel(model_path):
    """Conv MACs per pixel of the teacher, from its weights and strides (one ORT-free pass)."""
    m = onnx.load(model_path)
    inits = {i.name: i for i in m.graph.initializer}
    scale, total = 1.0, 0.0
    for node in m.graph.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]].dims
            strides = [a.ints for a in node.attribute if a.name == "strides"]
            stride = strides[0][0] if strides else 1
            scale /= stride * stride
            total += w[0] * w[1] * w[2] * w[3] * scale
        elif node.op_type == "Resize":
            scale *= 4
    return total


def trained_checkpoint(a):
    """The checkpoint to export: the last fine-tune phase's when there is one, else `train`'s;
    either must have run all its steps."""
    import torch

    phases = FINETUNE[:a.finetune_phases]
    if phases:
        state = torch.load(finetune_checkpoint(a, len(phases) - 1), weights_only=False)
        if state["step"] != phases[-1]["steps"]:
            sys.exit(f"fine-tune phase {len(phases)} is at step {state['step']} of {phases[-1]['steps']}: run `finetune`")
        return state, f"{a.steps} + " + " + ".join(str(p["steps"]) for p in phases) + " fine-tune steps"
    state = torch.load(os.path.join(a.cache, "student.pt"), weights_only=False)
    if state["step"] != a.steps:
        sys.exit(f"student.pt is at step {state['step']} of {a.steps}: run `train`")
    return state, f"{a.steps} steps"


def cmd_export(a):
    import torch

    state, steps = trained_checkpoint(a)
    params = {k: v.detach().numpy() for k, v in state["net"].items()}
    names = style_names(a.teacher)
    meta = {
        "stylize.source": "distilled by scripts/distill.py from multistyle26.onnx "
                          f"(teacher sha256 {sha256(a.teacher)}), {steps}, seed {a.seed}",
        "stylize.student_macs_per_pixel": f"{macs_per_pixel(state['arch']):.0f}",
    }
    model = build_onnx(params, state["arch"], state["n_styles"], names, meta)
    # The ONNX graph must compute what the trained torch net computes.
    net = torch_student(state["n_styles"], state["arch"])
    net.load_state_dict(state["net"])
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(1, 3, 68, 92)).astype(np.float32)
    w = rng.dirichlet(np.ones(state["n_styles"])).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(w)[None]).numpy()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["stylized"], {"content": x, "style_weights": w})[0]
    err = float(np.abs(got - ref).max())
    if err > 1e-4:
        sys.exit(f"ONNX export differs from the torch student by {err}")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    atomic_write(a.out, lambda tmp: onnx.save(model, tmp))
    if a.report:  # provenance, kept by `eval` when it rewrites the report
        training = {
            "teacher": os.path.basename(a.teacher), "teacher_sha256": sha256(a.teacher),
            "student_sha256": sha256(a.out), "arch": state["arch"],
            "parameters": int(sum(v.size for v in params.values())),
            "steps": a.steps, "seed": a.seed, "samples": a.samples, "crop": a.crop,
            "train_crop": a.train_crop, "batch": a.batch, "lr": a.lr,
            "w_detail": a.w_detail, "w_colour": a.w_colour,
            # Base phase's compute (unknown here when the fine-tune started from --init).
            "compute_minutes": None if state.get("base_seconds", 0.0) is None else
            round((state.get("base_seconds", 0.0) + state["seconds"]) / 60, 1),
            "data": TRAIN_CLIPS + TRAIN_PHOTOS, "held_out": HELD_OUT_CLIP,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                         "numpy": np.__version__, "opencv": cv2.__version__},
        }
        phases = FINETUNE[:a.finetune_phases]
        if phases:
            import torch

            runs = [torch.load(finetune_checkpoint(a, k), weights_only=False) for k in range(len(phases))]
            first = runs[0]
            base_seconds = first.get("base_seconds")
            training["compute_minutes"] = None if base_seconds is None else round(
                (base_seconds + sum(r["seconds"] for r in runs)) / 60, 1)
            training["finetune"] = {
                "from": first.get("init"), "from_sha256": first.get("init_sha256"),
                "batch": a.finetune_batch, "crop": a.finetune_crop, "w_layout": a.w_layout,
                "extra_samples": a.extra_samples, "extra_data": EXTRA_CLIPS + EXTRA_PHOTOS,
                "phases": [dict(p, compute_minutes=round(r["seconds"] / 60, 1)) for p, r in zip(phases, runs)],
            }
        report = json.load(open(a.report)) if os.path.exists(a.report) else {}
        report["training"] = training
        atomic_write(a.report, lambda tmp: json.dump(report, open(tmp, "w"), indent=1))
    log(f"wrote {a.out} ({os.path.getsize(a.out) / 1024:.0f} KiB), ONNX vs torch max |diff| {err:.1e}")


# ---------------------------------------------------------------------------------------------
# Fidelity on the held-out clip, and speed.


def lab(rgb01):
    return cv2.cvtColor(np.clip(rgb01, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)


def detail(rgb01):
    grey = cv2.cvtColor(np.clip(rgb01, 0, 1).astype(np.float32), cv2.COLOR_RGB2GRAY)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


def colour_delta_e(a, b, cell=8):
    """Mean CIELAB ΔE76 between the 8x8-cell means of two images: colour layout, not texture
    phase."""
    h, w = a.shape[:2]
    small = lambda im: cv2.resize(lab(im), (w // cell, h // cell), interpolation=cv2.INTER_AREA)
    return float(np.sqrt(((small(a) - small(b)) ** 2).sum(-1)).mean())


def rgb_ssim(a, b):
    a8 = np.clip(np.rint(a * 255), 0, 255)
    b8 = np.clip(np.rint(b * 255), 0, 255)
    return float(np.mean([ssim(a8[..., c], b8[..., c]) for c in range(3)]))


def bench(runs, threads, iterations, weights):
    """Median session.run ms per (name -> (model, (H, W))), runs interleaved so every model
    sees the same machine load."""
    rng = np.random.default_rng(0)
    feeds = {k: rng.uniform(size=(1, 3) + shape).astype(np.float32) for k, (_, shape) in runs.items()}
    sessions = {k: session(p, threads) for k, (p, _) in runs.items()}
    times = {k: [] for k in runs}
    for _ in range(2):
        for k, s in sessions.items():
            s.run(["stylized"], {"content": feeds[k], "style_weights": weights})
    for _ in range(iterations):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(["stylized"], {"content": feeds[k], "style_weights": weights})
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: {"median_ms": float(np.median(v)), "min_ms": float(np.min(v))} for k, v in times.items()}


def speed_640x360(a):
    """Teacher and student at 640x360 and the teacher at 320x180, interleaved."""
    one_hot = np.eye(len(style_names(a.teacher)), dtype=np.float32)[19]
    speed = bench({"teacher": (a.teacher, (360, 640)), "student": (a.out, (360, 640)),
                   "teacher_half": (a.teacher, (180, 320))}, a.threads, a.bench_iterations, one_hot)
    return dict(speed, threads=a.threads, iterations=a.bench_iterations,
                speedup=speed["teacher"]["median_ms"] / speed["student"]["median_ms"],
                speedup_min=speed["teacher"]["min_ms"] / speed["student"]["min_ms"],
                onnxruntime=ort.__version__, cpu=platform.processor() or platform.machine(),
                loadavg_1min=os.getloadavg()[0])


def cmd_bench(a):
    """Re-measure the speed only (e.g. when the machine is quieter) and update the report."""
    speed = speed_640x360(a)
    log(f"speed 640x360: teacher {speed['teacher']['median_ms']:.1f} ms, student "
        f"{speed['student']['median_ms']:.1f} ms ({speed['speedup']:.2f}x, by minimum "
        f"{speed['speedup_min']:.2f}x), load {speed['loadavg_1min']:.1f}")
    if a.report and os.path.exists(a.report):
        report = json.load(open(a.report))
        report["speed_640x360"] = speed
        atomic_write(a.report, lambda tmp: json.dump(report, open(tmp, "w"), indent=1))


def cmd_bench_element(a):
    """Teacher vs student through the Rust engine and the GStreamer element (`stylize bench`,
    --cli), at 640x360, in --rounds runs that alternate which model goes first (the CLI
    measures one model after the other; alternating and repeating shows the spread a busy
    machine gives). Per round: the p50s with their 95 % intervals and the ratio, bounded by
    the two intervals; the report gets every round and the median ratio."""
    import subprocess
    import tempfile

    rounds = []
    paths = {"student": a.out, "teacher": a.teacher}
    for r in range(a.rounds):
        first, second = ("student", "teacher") if r % 2 == 0 else ("teacher", "student")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "bench.json")
            cmd = [a.cli, "bench", "--model", paths[first], "--compare", paths[second], "--cases", "640x360",
                   "--iterations", str(a.bench_iterations), "--threads", str(a.threads), "--style", "starry-swirls",
                   "--no-python", "--smoothing", "0", "--out", out]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            models = json.load(open(out))["models"]
        case = {("student" if os.path.samefile(m["model"], a.out) else "teacher"): m["cases"][0] for m in models}
        row = {"first": first, "loadavg_1min": os.getloadavg()[0]}
        for path in ("engine_infer_ms", "element_ms"):
            t, st = case["teacher"][path], case["student"][path]
            row[path] = {"teacher_p50": t["p50"], "teacher_ci95": t["p50_ci95"], "student_p50": st["p50"],
                         "student_ci95": st["p50_ci95"], "speedup": t["p50"] / st["p50"],
                         "speedup_ci95": [t["p50_ci95"][0] / st["p50_ci95"][1], t["p50_ci95"][1] / st["p50_ci95"][0]]}
        rounds.append(row)
        e = row["element_ms"]
        log(f"round {r + 1}/{a.rounds} ({first} first): element teacher {e['teacher_p50']:.1f} ms, student "
            f"{e['student_p50']:.1f} ms, {e['speedup']:.2f}x [{e['speedup_ci95'][0]:.2f}, {e['speedup_ci95'][1]:.2f}]; "
            f"network {row['engine_infer_ms']['speedup']:.2f}x; load {row['loadavg_1min']:.1f}")
    summary = {path: {"median_speedup": float(np.median([r[path]["speedup"] for r in rounds])),
                      "min_speedup": float(min(r[path]["speedup"] for r in rounds)),
                      "max_speedup": float(max(r[path]["speedup"] for r in rounds))}
               for path in ("engine_infer_ms", "element_ms")}
    run = {"unix_time": int(time.time()), "iterations": a.bench_iterations, "rounds": rounds, **summary}
    log(f"element speed-up over {a.rounds} rounds: median {summary['element_ms']['median_speedup']:.2f}x "
        f"(min {summary['element_ms']['min_speedup']:.2f}, max {summary['element_ms']['max_speedup']:.2f})")
    if a.report and os.path.exists(a.report):
        # Every run on this student is kept (a busy machine changes the ratio from run to run).
        report = json.load(open(a.report))
        student = sha256(a.out)
        runs = report.get("speed_element_640x360", {})
        runs = runs.get("runs", []) if runs.get("student_sha256") == student else []
        report["speed_element_640x360"] = {
            "command": f"{os.path.relpath(a.cli)} bench --model STUDENT --compare TEACHER --cases 640x360 "
                       f"--iterations N --threads {a.threads} --style starry-swirls --no-python --smoothing 0 "
                       "(the two models swapped every other round)",
            "student_sha256": student, "runs": runs + [run]}
        atomic_write(a.report, lambda tmp: json.dump(report, open(tmp, "w"), indent=1))


def cmd_stretches(a):
    """Colour ΔE of student and half-size teacher over the whole held-out clip, in six
    stretches of 130 frames (every 13th frame), for --stretch-styles: whether a colour win on
    the 30 evaluated frames holds elsewhere in the clip."""
    names = style_names(a.teacher)
    teacher, student = session(a.teacher, a.threads), session(a.out, a.threads)
    w_eval, h_eval = a.eval_size
    frames = read_frames(os.path.join(a.assets, HELD_OUT_CLIP), limit=780, size=(w_eval, h_eval))
    result = {}
    for label in a.stretch_styles.split(","):
        wv = np.eye(len(names), dtype=np.float32)[names.index(label)]
        rows = []
        for lo in range(0, len(frames) - 129, 130):
            de = {"student": [], "teacher_half": []}
            for f in frames[lo:lo + 130:13]:
                x = f.astype(np.float32) / 255.0
                t = run_net(teacher, x, wv)
                half = cv2.resize(x, (w_eval // 2, h_eval // 2), interpolation=cv2.INTER_AREA)
                h = cv2.resize(run_net(teacher, half, wv), (w_eval, h_eval), interpolation=cv2.INTER_LINEAR)
                de["student"].append(colour_delta_e(run_net(student, x, wv), t))
                de["teacher_half"].append(colour_delta_e(h, t))
            rows.append({"frames": [lo, lo + 130], **{k: float(np.mean(v)) for k, v in de.items()}})
            log(f"{label} frames {lo}-{lo + 130}: ΔE student {rows[-1]['student']:.2f}, half size {rows[-1]['teacher_half']:.2f}")
        result[label] = rows
    if a.report and os.path.exists(a.report):
        report = json.load(open(a.report))
        report["colour_stretches"] = dict(result, student_sha256=sha256(a.out))
        atomic_write(a.report, lambda tmp: json.dump(report, open(tmp, "w"), indent=1))


def cmd_eval(a):
    names = style_names(a.teacher)
    teacher, student = session(a.teacher, a.threads), session(a.out, a.threads)
    w_eval, h_eval = a.eval_size
    frames = read_frames(os.path.join(a.assets, HELD_OUT_CLIP), limit=a.eval_frames, size=(w_eval, h_eval))
    warps = flows(np.stack(frames))
    styles = range(len(names)) if a.styles == "all" else [names.index(s) for s in a.styles.split(",")]
    blends = [("blend:" + names[i] + "+" + names[j], i, j) for i, j in ((19, 25), (2, 15))]
    per_style, sheets = {}, []
    cases = [(names[i], np.eye(len(names), dtype=np.float32)[i]) for i in styles]
    for label, i, j in blends:
        v = np.zeros(len(names), np.float32)
        v[i] = v[j] = 0.5
        cases.append((label, v))
    for label, wv in cases:
        outs = {"teacher": [], "student": [], "teacher_half": []}
        for f in frames:
            x = f.astype(np.float32) / 255.0
            outs["teacher"].append(run_net(teacher, x, wv))
            outs["student"].append(run_net(student, x, wv))
            half = cv2.resize(x, (w_eval // 2, h_eval // 2), interpolation=cv2.INTER_AREA)
            outs["teacher_half"].append(cv2.resize(run_net(teacher, half, wv), (w_eval, h_eval),
                                                   interpolation=cv2.INTER_LINEAR))
        row = {}
        t_detail = np.mean([detail(t) for t in outs["teacher"]])
        for k in ("student", "teacher_half"):
            row[k] = {
                "ssim_to_teacher": float(np.mean([rgb_ssim(o, t) for o, t in zip(outs[k], outs["teacher"])])),
                "detail_ratio": float(np.mean([detail(o) for o in outs[k]]) / t_detail),
                "colour_delta_e": float(np.mean([colour_delta_e(o, t) for o, t in zip(outs[k], outs["teacher"])])),
            }
        for k in outs:
            u8 = np.stack([np.clip(np.rint(o * 255), 0, 255).astype(np.uint8) for o in outs[k]])
            row.setdefault(k, {})["warping_error"] = warping_error(u8, warps)
        s, hf = row["student"], row["teacher_half"]
        row["student_beats_half"] = {
            "ssim": s["ssim_to_teacher"] > hf["ssim_to_teacher"],
            "detail": abs(np.log(s["detail_ratio"])) < abs(np.log(hf["detail_ratio"])),
            "colour": s["colour_delta_e"] < hf["colour_delta_e"],
            "warping": s["warping_error"] <= hf["warping_error"],
        }
        per_style[label] = row
        log(f"{label:28s} ssim {s['ssim_to_teacher']:.3f}/{hf['ssim_to_teacher']:.3f} "
            f"detail {s['detail_ratio']:.2f}/{hf['detail_ratio']:.2f} "
            f"dE {s['colour_delta_e']:.1f}/{hf['colour_delta_e']:.1f} "
            f"warp {s['warping_error']:.4f}/{hf['warping_error']:.4f} (teacher {row['teacher']['warping_error']:.4f})"
            "  [student/half-res teacher]")
        if label in a.sheet_styles.split(","):
            mid = len(frames) // 2
            tile = [frames[mid].astype(np.float32) / 255.0, outs["teacher"][mid], outs["student"][mid],
                    outs["teacher_half"][mid]]
            sheets.append((label, np.concatenate(tile, axis=1)))
    if sheets and a.sheets:
        os.makedirs(a.sheets, exist_ok=True)
        for label, img in sheets:
            path = os.path.join(a.sheets, label.replace(":", "-").replace("+", "-") + ".png")
            bgr = cv2.cvtColor(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
            atomic_write(path, lambda tmp: cv2.imwrite(tmp + ".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9]) and os.replace(tmp + ".png", tmp))
    speed = speed_640x360(a)
    summary = {}
    for k in ("student", "teacher_half"):
        summary[k] = {m: float(np.median([r[k][m] for r in per_style.values()]))
                      for m in ("ssim_to_teacher", "detail_ratio", "colour_delta_e", "warping_error")}
    summary["teacher"] = {"warping_error": float(np.median([r["teacher"]["warping_error"] for r in per_style.values()]))}
    wins = {m: sum(r["student_beats_half"][m] for r in per_style.values()) for m in ("ssim", "detail", "colour", "warping")}
    report = {
        "held_out_clip": HELD_OUT_CLIP,
        "eval_size": [w_eval, h_eval],
        "eval_frames": len(frames),
        "teacher": os.path.basename(a.teacher),
        "teacher_sha256": sha256(a.teacher),
        "student": os.path.basename(a.out),
        "student_sha256": sha256(a.out),
        "macs_per_pixel": {"teacher": teacher_macs_per_pixel(a.teacher), "student": macs_per_pixel(ARCH)},
        "speed_640x360": speed,
        "median_over_styles": summary,
        "student_beats_half_res_teacher": dict(wins, of=len(per_style)),
        "per_style": per_style,
        "metrics": {
            "ssim_to_teacher": "mean over RGB channels and frames of SSIM (Gaussian 11x11, sigma 1.5) to the teacher at the same size",
            "detail_ratio": "mean |Laplacian| of luma, this output / the teacher's (1 = same fine detail; a blur is < 1)",
            "colour_delta_e": "mean CIELAB dE76 between 8x8-cell means of this output and the teacher's",
            "warping_error": "scripts/quality_metrics.py: occlusion-masked MSE of O_t vs O_{t-1} warped by the input's Farneback flow",
            "teacher_half": "the teacher at half width and height, bilinear-upscaled: what a user can do today for 4x less compute",
        },
    }
    if a.report:
        train_meta = {}
        if os.path.exists(a.report):
            # Provenance and the other stages' measurements (each names the student it measured).
            train_meta = {k: v for k, v in json.load(open(a.report)).items()
                          if k in ("training", "speed_element_640x360", "colour_stretches")}
        report.update(train_meta)
        atomic_write(a.report, lambda tmp: json.dump(report, open(tmp, "w"), indent=1, default=lambda o: o.item()))
    log(f"speed 640x360: teacher {speed['teacher']['median_ms']:.1f} ms, student {speed['student']['median_ms']:.1f} ms "
        f"({report['speed_640x360']['speedup']:.2f}x); MAC/px {report['macs_per_pixel']}")
    log(f"median over styles: {json.dumps(summary)}; student beats half-res teacher: {wins} of {len(per_style)}")


def cmd_table(a):
    """Markdown tables of the report (docs/distill.md and models/MANIFEST.md are made from
    them): the medians and, per style, student / half-size teacher on every metric."""
    r = json.load(open(a.report))
    sp, med, mac = r["speed_640x360"], r["median_over_styles"], r["macs_per_pixel"]
    s, h, t = med["student"], med["teacher_half"], med["teacher"]
    print("| | ms/frame 640×360 (median) | MAC/px | SSIM to teacher | detail ratio | colour ΔE | warping error |")
    print("|---|---|---|---|---|---|---|")
    print(f"| teacher (multistyle26) | {sp['teacher']['median_ms']:.1f} | {mac['teacher']:.0f} | 1 | 1 | 0 | {t['warping_error']:.5f} |")
    print(f"| **student (multistyle26-fast)** | **{sp['student']['median_ms']:.1f}** ({sp['speedup']:.2f}× faster) "
          f"| **{mac['student']:.0f}** ({mac['teacher'] / mac['student']:.1f}× fewer) | **{s['ssim_to_teacher']:.3f}** "
          f"| **{s['detail_ratio']:.2f}** | **{s['colour_delta_e']:.1f}** | **{s['warping_error']:.5f}** |")
    print(f"| teacher at half size (320×180), upscaled | {sp['teacher_half']['median_ms']:.1f} | {mac['teacher'] / 4:.0f} "
          f"| {h['ssim_to_teacher']:.3f} | {h['detail_ratio']:.2f} | {h['colour_delta_e']:.1f} | {h['warping_error']:.5f} |")
    wins = r["student_beats_half_res_teacher"]
    print(f"\nStudent better than the half-size teacher (of {wins['of']} styles and blends): SSIM {wins['ssim']}, "
          f"detail {wins['detail']}, colour {wins['colour']}, warping error {wins['warping']}.\n")
    print("| style | SSIM student / half | detail student / half | ΔE student / half | warping student / half / teacher |")
    print("|---|---|---|---|---|")
    for label, row in r["per_style"].items():
        st, hf, ok = row["student"], row["teacher_half"], row["student_beats_half"]
        mark = lambda m: "" if ok[m] else " ✗"
        print(f"| {label} | {st['ssim_to_teacher']:.3f} / {hf['ssim_to_teacher']:.3f}{mark('ssim')} "
              f"| {st['detail_ratio']:.2f} / {hf['detail_ratio']:.2f}{mark('detail')} "
              f"| {st['colour_delta_e']:.1f} / {hf['colour_delta_e']:.1f}{mark('colour')} "
              f"| {st['warping_error']:.5f} / {hf['warping_error']:.5f} / {row['teacher']['warping_error']:.5f}{mark('warping')} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=["cache", "train", "finetune", "export", "eval", "bench", "bench-element", "stretches", "table", "all"])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--assets", default=os.environ.get("STYLIZE_ASSETS", os.path.join(here, "assets")))
    p.add_argument("--teacher", default=None, help="teacher ONNX (default ASSETS/models/multistyle26.onnx)")
    p.add_argument("--out", default=os.path.join(here, "models", "multistyle26-fast.onnx"))
    p.add_argument("--report", default=os.path.join(here, "models", "multistyle26-fast.json"))
    p.add_argument("--cache", default=None, help="teacher cache + checkpoint (default ASSETS/distill-cache)")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--chunk", type=int, default=250)
    p.add_argument("--train-crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--finetune-phases", type=int, default=len(FINETUNE), help="how many FINETUNE phases (0: none)")
    p.add_argument("--finetune-batch", type=int, default=4)
    p.add_argument("--finetune-crop", type=int, default=192)
    p.add_argument("--w-layout", type=float, default=4.0)
    p.add_argument("--extra-samples", type=int, default=3000)
    p.add_argument("--extra-cache", default=None, help="fine-tune's extra cache (default ASSETS/distill-cache-extra)")
    p.add_argument("--checkpoints", default=None, help="fine-tune checkpoint folder (default: the cache)")
    p.add_argument("--init", default=None, help="fine-tune from this student ONNX instead of `train`'s checkpoint")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--w-detail", type=float, default=2.0)
    p.add_argument("--w-colour", type=float, default=0.5)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--eval-size", type=int, nargs=2, default=[480, 360], metavar=("W", "H"))
    p.add_argument("--eval-frames", type=int, default=30)
    p.add_argument("--styles", default="all")
    p.add_argument("--sheet-styles", default="starry-swirls,mosaic,stained-glass,charcoal,pastel-wash,blend:starry-swirls+mosaic")
    p.add_argument("--sheets", default=os.path.join(here, "docs", "distill"))
    p.add_argument("--bench-iterations", type=int, default=30)
    p.add_argument("--stretch-styles", default="pastel-wash,frosted", help="stretches: styles to check")
    p.add_argument("--rounds", type=int, default=6, help="bench-element: alternating rounds")
    p.add_argument("--cli", default=os.path.join(here, "target", "debug", "stylize"), help="bench-element: the stylize binary")
    a = p.parse_args()
    a.teacher = a.teacher or os.path.join(a.assets, "models", "multistyle26.onnx")
    a.cache = a.cache or os.path.join(a.assets, "distill-cache")
    a.extra_cache = a.extra_cache or os.path.join(a.assets, "distill-cache-extra")
    a.checkpoints = a.checkpoints or a.cache
    stages = ["cache", "train", "finetune", "export", "eval"] if a.stage == "all" else [a.stage]
    for stage in stages:
        log(f"stage {stage}")
        globals()[f"cmd_{stage.replace('-', '_')}"](a)


if __name__ == "__main__":
    main()
