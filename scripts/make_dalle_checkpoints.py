#!/usr/bin/env python3
"""DALL·E-style checkpoint fixture: a standard decoder-only transformer exported by Optimum
(`text-generation-with-past`: input_ids, attention_mask, position_ids, past_key_values.*),
a BPE `tokenizer.json` from the `tokenizers` package, and a VQGAN decoder from diffusers'
VQModel, all reduced-size with random weights, plus reference image tokens from greedy
decoding in PyTorch (tests compare the Rust sampler's top-k=1 tokens with them).

Usage (scripts/make_checkpoint_fixtures runs both steps with the exact versions):
  make_dalle_checkpoints.py transformer OUT   (torch, transformers 4.57, optimum-onnx, tokenizers)
  make_dalle_checkpoints.py vqgan OUT         (torch, diffusers; reads OUT/reference.json)
"""
import json
import os
import sys

import numpy as np
import torch

STEP, OUT = sys.argv[1], sys.argv[2]
TEXT_LEN, GRID, IMAGE_VOCAB, VQ_DIM = 16, 4, 32, 8
PROMPTS = ["a lighthouse at night", "Red tiles, golden light!"]
CORPUS = [
    "a lighthouse at night", "a painting of a red barn in the snow", "golden light on tiles",
    "a photo of a cat on a sofa", "the sea at dawn with boats", "mosaic of blue and gold",
    "an oil painting of mountains", "a city street in the rain at night", "red tiles, golden",
] * 20


def versions():
    import importlib.metadata as md
    out = {}
    for pkg in ["torch", "transformers", "optimum", "optimum-onnx", "tokenizers", "diffusers",
                "onnx", "onnxruntime", "onnxscript"]:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def widen(model, seed):
    """Random weights wide enough that greedy decoding has no near-ties (transformers'
    default std 0.02 makes every logit almost equal)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.6 / p.shape[-1] ** 0.5)


def transformer():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[PAD]", "[BOS]", "[EOS]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    bos, eos, pad = (tok.token_to_id(t) for t in ["[BOS]", "[EOS]", "[PAD]"])
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", bos), ("[EOS]", eos)])
    tok.save(os.path.join(OUT, "tokenizer.json"))
    text_vocab = tok.get_vocab_size()

    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=text_vocab + IMAGE_VOCAB, n_positions=TEXT_LEN + GRID * GRID,
                        n_embd=32, n_layer=2, n_head=2, bos_token_id=bos, eos_token_id=eos)
    model = GPT2LMHeadModel(config).eval()
    widen(model, 1)
    with torch.no_grad():  # strong positions: greedy decoding of a random model otherwise
        model.transformer.wpe.weight.normal_(0, 0.5)  # settles into repeating one token
    tmp = os.path.join(OUT, "hf-model.tmp")
    model.save_pretrained(tmp)
    from optimum.exporters.onnx import main_export
    main_export(tmp, output=os.path.join(OUT, "export.tmp"), task="text-generation-with-past",
                no_post_process=True)
    os.replace(os.path.join(OUT, "export.tmp", "model.onnx"), os.path.join(OUT, "model.onnx"))
    for d in ["export.tmp", "hf-model.tmp"]:
        import shutil
        shutil.rmtree(os.path.join(OUT, d))

    # Greedy (top-k = 1) image tokens, recomputing the whole sequence each step in PyTorch.
    tokens = []
    for prompt in PROMPTS:
        ids = tok.encode(prompt).ids
        ids += [pad] * (TEXT_LEN - len(ids))
        seq = torch.tensor([ids])
        out, all_logits = [], []
        with torch.no_grad():
            for _ in range(GRID * GRID):
                logits = model(input_ids=seq).logits[0, -1, text_vocab:]
                t = int(torch.argmax(logits))
                out.append(t)
                all_logits.append(logits.tolist())
                seq = torch.cat([seq, torch.tensor([[text_vocab + t]])], dim=1)
        # The image-vocabulary logits of every step too: a random model's greedy tokens
        # repeat, and the logits show a wrong cache or position where tokens might not.
        tokens.append({"prompt": prompt, "input_ids": ids, "image_tokens": out,
                       "logits": all_logits})
    config = {"transformer": "model.onnx", "decoder": "vqgan.onnx", "tokenizer": "tokenizer.json",
              "text_vocab": text_vocab, "image_vocab": IMAGE_VOCAB, "text_len": TEXT_LEN,
              "image_tokens": GRID * GRID, "pad_id": pad}
    with open(os.path.join(OUT, "dalle.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"samples": tokens, "versions": {"transformer": versions()}}, f, indent=1)


def vqgan():
    from diffusers import VQModel
    torch.manual_seed(0)
    vq = VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32),
                 layers_per_block=1, latent_channels=VQ_DIM, num_vq_embeddings=IMAGE_VOCAB,
                 vq_embed_dim=VQ_DIM, norm_num_groups=8, sample_size=8).eval()
    vq.requires_grad_(False)
    with torch.no_grad():
        vq.quantize.embedding.weight.normal_(0, 1)

    class Decode(torch.nn.Module):
        """image_tokens [B, GRID*GRID] (row-major) -> img [B,3,H,W] in [-1,1]."""
        def forward(self, image_tokens):
            b = image_tokens.shape[0]
            q = vq.quantize.embedding(image_tokens).reshape(b, GRID, GRID, VQ_DIM)
            q = q.permute(0, 3, 1, 2)
            return vq.decoder(vq.post_quant_conv(q)).clamp(-1, 1)

    torch.onnx.export(Decode(), torch.zeros(1, GRID * GRID, dtype=torch.long),
                      os.path.join(OUT, "vqgan.onnx"), input_names=["image_tokens"],
                      output_names=["img"], dynamic_axes={"image_tokens": {0: "B"}, "img": {0: "B"}},
                      opset_version=18, dynamo=False)
    path = os.path.join(OUT, "reference.json")
    ref = json.load(open(path))
    with torch.no_grad():
        for s in ref["samples"]:
            img = Decode()(torch.tensor([s["image_tokens"]]))
            q = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
            s["image"] = q[0].numpy().tolist()
    ref["versions"]["vqgan"] = versions()
    with open(path, "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    {"transformer": transformer, "vqgan": vqgan}[STEP]()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))
