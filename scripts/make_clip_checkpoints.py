#!/usr/bin/env python3
"""CLIP checkpoint fixtures: reduced-size, random-weight CLIP models written by the real
exporters, in the layouts users download or make, plus reference embeddings computed by the
PyTorch model itself (tests/clip_checkpoints.rs compares the Rust loader's output with them).

Usage: make_clip_checkpoints.py LAYOUT OUT_DIR   (needs torch, transformers, onnx; see
scripts/make_checkpoint_fixtures for the exact environments and versions)

LAYOUT
  recipe         docs/prompts.md's two-graph export, exactly as documented
  recipe-legacy  the same with torch's TorchScript exporter (dynamo=False): what torch < 2.9 runs
  unfixed        the recipe as docs/prompts.md had it before issue 18 (no `.pooler_output`):
                 under transformers 5 the named output is the last hidden state
  optimum        transformers.js / Optimum split layout: text_model.onnx, vision_model.onnx and
                 their dynamically quantized *_quantized.onnx (onnxruntime.quantization)
  onnx-clip      onnx-clip's layout: IMAGE / TEXT (int32) -> first output, from the `openai-clip`
                 package's model (OpenAI's CLIP code)

The model is the real architecture at a reduced size (ViT with 32-px patches on 224x224 images,
2 layers; the full 49408-token vocabulary with 8-wide text embeddings), weights from a fixed seed.
"""
import json
import os
import sys

import numpy as np
import torch

LAYOUT, OUT = sys.argv[1], sys.argv[2]
PROMPTS = ["a photo of a cat", "a mosaic of red and golden tiles"]
# clip.tokenize of PROMPTS (verified against the reference tokenizer by tests/clip.rs).
START, END = 49406, 49407


def pixels():
    """A deterministic [2,3,224,224] input that tests/clip_checkpoints.rs recomputes."""
    b, c, y, x = np.meshgrid(np.arange(2), np.arange(3), np.arange(224), np.arange(224),
                             indexing="ij")
    return np.sin(0.05 * x + 0.031 * y + 1.3 * c + 0.7 * b).astype(np.float32)


def hf_model():
    from transformers import CLIPConfig, CLIPModel
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, vocab_size=49408, max_position_embeddings=77,
                         projection_dim=8),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, image_size=224, patch_size=32,
                           projection_dim=8),
        projection_dim=8,
    )
    m = CLIPModel(config).eval()
    # transformers initialises the token embedding with std 0.02: too small for differences
    # between prompts to survive float rounding in the comparison. Wider random weights.
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5)
    return m


def ids_for(tokens_per_prompt):
    ids = np.zeros((len(tokens_per_prompt), 77), np.int64)
    for i, t in enumerate(tokens_per_prompt):
        row = [START, *t, END]
        ids[i, :len(row)] = row
    return ids


def write_reference(out, files, image_embeds, text_embeds, ids, tol, notes):
    import importlib.metadata as md
    versions = {}
    for pkg in ["torch", "transformers", "onnx", "onnxruntime", "openai-clip", "optimum",
                "optimum-onnx", "onnxscript"]:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    ref = dict(layout=LAYOUT, files=files, prompts=PROMPTS, input_ids=ids.tolist(),
               image_embeds=image_embeds.tolist(), text_embeds=text_embeds.tolist(),
               tolerance=tol, versions=versions, notes=notes)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


def tokens():
    # Token ids of PROMPTS without markers, from OpenAI's tokenizer (bpe_simple_vocab_16e6).
    return [[320, 1125, 539, 320, 2368], [320, 17506, 539, 736, 537, 3878, 10607]]


def export_recipe(out, fixed, legacy):
    """docs/prompts.md's recipe with `m` a random model instead of from_pretrained."""
    m = hf_model()
    m.requires_grad_(False)  # torch < 2.9 (TorchScript exporter) refuses weights that need grad

    def features(out):  # transformers 4 returns the embedding, 5 an output object
        return out if torch.is_tensor(out) or not fixed else out.pooler_output

    class Image(torch.nn.Module):
        def forward(self, pixel_values):
            return features(m.get_image_features(pixel_values=pixel_values))

    class Text(torch.nn.Module):
        def forward(self, input_ids):
            return features(m.get_text_features(input_ids=input_ids))

    kw = dict(dynamo=False) if legacy else {}
    dyn = {0: "B"}
    torch.onnx.export(Image(), torch.zeros(1, 3, 224, 224), f"{out}/image.onnx", opset_version=18,
                      input_names=["pixel_values"], output_names=["image_embeds"],
                      dynamic_axes={"pixel_values": dyn, "image_embeds": dyn}, **kw)
    torch.onnx.export(Text(), torch.zeros(1, 77, dtype=torch.long), f"{out}/text.onnx",
                      opset_version=18, input_names=["input_ids"], output_names=["text_embeds"],
                      dynamic_axes={"input_ids": dyn, "text_embeds": dyn}, **kw)
    return m


def hf_reference(m, ids):
    with torch.no_grad():
        img = m.get_image_features(pixel_values=torch.from_numpy(pixels()))
        txt = m.get_text_features(input_ids=torch.from_numpy(ids))
    img = img if torch.is_tensor(img) else img.pooler_output
    txt = txt if torch.is_tensor(txt) else txt.pooler_output
    return img.numpy(), txt.numpy()


def export_optimum(out):
    """transformers.js's scripts/convert.py split export: Optimum's exporter with the
    text-with-projection config and a vision-with-projection config, then quantize_dynamic."""
    from optimum.exporters.onnx import export_models
    from optimum.exporters.onnx.model_configs import (CLIPTextWithProjectionOnnxConfig,
                                                      ViTOnnxConfig)
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    class CLIPVisionWithProjectionOnnxConfig(ViTOnnxConfig):  # as transformers.js defines it
        @property
        def outputs(self):
            return {"image_embeds": {0: "batch_size"},
                    "last_hidden_state": {0: "batch_size"}}

    m = hf_model()
    text = CLIPTextModelWithProjection(m.config.text_config).eval()
    vision = CLIPVisionModelWithProjection(m.config.vision_config).eval()
    text.text_model.load_state_dict(m.text_model.state_dict())
    text.text_projection.load_state_dict(m.text_projection.state_dict())
    vision.vision_model.load_state_dict(m.vision_model.state_dict())
    vision.visual_projection.load_state_dict(m.visual_projection.state_dict())
    export_models(
        models_and_onnx_configs={
            "text_model": (text, CLIPTextWithProjectionOnnxConfig(text.config,
                                                                   task="feature-extraction")),
            "vision_model": (vision, CLIPVisionWithProjectionOnnxConfig(
                vision.config, task="feature-extraction")),
        },
        output_dir=__import__("pathlib").Path(out),
        output_names=["text_model.onnx", "vision_model.onnx"],
    )
    from onnxruntime.quantization import QuantType, quantize_dynamic
    for name in ["text_model", "vision_model"]:
        quantize_dynamic(f"{out}/{name}.onnx", f"{out}/{name}_quantized.onnx",
                         weight_type=QuantType.QUInt8, per_channel=False, reduce_range=False)
    return m


def export_onnx_clip(out):
    """onnx-clip's export of OpenAI's CLIP (clip/model.py of the `openai-clip` package): IMAGE
    and TEXT in, the embedding out (onnx-clip reads output 0 whatever its name)."""
    import importlib.util
    import importlib.metadata as md
    dist = md.distribution("openai-clip")
    path = next(str(dist.locate_file(f)) for f in dist.files if str(f).endswith("clip/model.py"))
    spec = importlib.util.spec_from_file_location("openai_clip_model", path)
    mod = importlib.util.module_from_spec(spec)  # model.py alone: clip/__init__ needs torchvision
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    m = mod.CLIP(embed_dim=8, image_resolution=224, vision_layers=2, vision_width=64,
                 vision_patch_size=32, context_length=77, vocab_size=49408,
                 transformer_width=8, transformer_heads=2, transformer_layers=2).eval()
    m.requires_grad_(False)
    with torch.no_grad():
        m.token_embedding.weight.normal_(0, 0.5)

    class Image(torch.nn.Module):
        def forward(self, IMAGE):
            return m.encode_image(IMAGE)

    class Text(torch.nn.Module):
        def forward(self, TEXT):
            return m.encode_text(TEXT.long())

    dyn = {0: "batch_size"}
    torch.onnx.export(Image(), torch.zeros(1, 3, 224, 224), f"{out}/clip_image_model.onnx",
                      input_names=["IMAGE"], output_names=["IMAGE_EMBEDDING"],
                      dynamic_axes={"IMAGE": dyn, "IMAGE_EMBEDDING": dyn}, opset_version=18,
                      dynamo=False)
    torch.onnx.export(Text(), torch.zeros(1, 77, dtype=torch.int32),
                      f"{out}/clip_text_model.onnx", input_names=["TEXT"],
                      output_names=["TEXT_EMBEDDING"],
                      dynamic_axes={"TEXT": dyn, "TEXT_EMBEDDING": dyn}, opset_version=18,
                      dynamo=False)
    return m


def main():
    os.makedirs(OUT, exist_ok=True)
    ids = ids_for(tokens())
    if LAYOUT in ("recipe", "recipe-legacy", "unfixed"):
        m = export_recipe(OUT, fixed=LAYOUT != "unfixed", legacy=LAYOUT == "recipe-legacy")
        img, txt = hf_reference(m, ids)
        files = ["image.onnx", "text.onnx"]
        write_reference(OUT, [files], img, txt, ids, 1e-4, "")
    elif LAYOUT == "optimum":
        m = export_optimum(OUT)
        img, txt = hf_reference(m, ids)
        write_reference(OUT, [["vision_model.onnx", "text_model.onnx"],
                              ["vision_model_quantized.onnx", "text_model_quantized.onnx"]],
                        img, txt, ids, 1e-4,
                        "quantized pair: compared by cosine (>= 0.98), not value by value")
    elif LAYOUT == "onnx-clip":
        m = export_onnx_clip(OUT)
        with torch.no_grad():
            img = m.encode_image(torch.from_numpy(pixels())).numpy()
            txt = m.encode_text(torch.from_numpy(ids)).numpy()
        write_reference(OUT, [["clip_image_model.onnx", "clip_text_model.onnx"]], img, txt, ids,
                        1e-4, "")
    else:
        sys.exit(f"unknown layout {LAYOUT}")
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
