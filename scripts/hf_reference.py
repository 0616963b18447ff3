#!/usr/bin/env python3
"""Make the independent-reference fixtures for the native model from Hugging Face transformers.

For each tiny config in configs/models/, build the HF model with a fixed seed, save it with
save_pretrained (safetensors) to test/fixtures/hf-<name>/, and record its logits on fixed inputs
(text before, an image in the middle, text after; a second text-only sequence) in
reference.safetensors next to it. test/model/hf_reference.test.ts loads the folder with Model.load and
compares. Run where transformers (with Qwen2-VL / Qwen2.5-VL) is installed, e.g. the GPU machine:
    python3 scripts/hf_reference.py [--out test/fixtures]
No network is needed: the models are random and the tokenizer is the project's own.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(name, cfg_path):
    from transformers import AutoConfig, AutoModelForImageTextToText

    with open(cfg_path) as f:
        raw = json.load(f)
    config = AutoConfig.for_model(**raw)
    config._attn_implementation = "eager"
    torch.manual_seed(1234)
    model = AutoModelForImageTextToText.from_config(config, torch_dtype=torch.float32).eval()
    return raw, model


def inputs(raw):
    vs, pad, ve = raw["vision_start_token_id"], raw["image_token_id"], raw["vision_end_token_id"]
    grid = torch.tensor([[1, 8, 12]])  # 8x12 patches -> 4x6 = 24 merged tokens
    gen = torch.Generator().manual_seed(99)
    pixel_values = torch.randn(int(grid.prod()), 1176, generator=gen)
    seq = [11, 12, 13, vs] + [pad] * 24 + [ve, 21, 22, 23, 24]
    return torch.tensor([seq]), pixel_values, grid, torch.tensor([[5, 6, 7, 8, 9, 10, 300, 301]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures"))
    args = ap.parse_args()
    for name, file in [("hf-tiny-qwen2-vl", "tiny-qwen2-vl.json"), ("hf-tiny-qwen2.5-vl", "tiny-qwen2.5-vl.json")]:
        raw, model = build(name, os.path.join(ROOT, "configs", "models", file))
        out = os.path.join(args.out, name)
        shutil.rmtree(out, ignore_errors=True)
        model.save_pretrained(out, safe_serialization=True)
        ids, pixels, grid, text_ids = inputs(raw)
        with torch.no_grad():
            logits_img = model(input_ids=ids, pixel_values=pixels, image_grid_thw=grid).logits[0]
            logits_txt = model(input_ids=text_ids).logits[0]
        save_file(
            {
                "image.input_ids": ids[0].to(torch.int32).contiguous(),
                "image.pixel_values": pixels.contiguous(),
                "image.grid": grid[0].to(torch.int32).contiguous(),
                "image.logits": logits_img.float().contiguous(),
                "text.input_ids": text_ids[0].to(torch.int32).contiguous(),
                "text.logits": logits_txt.float().contiguous(),
            },
            os.path.join(out, "reference.safetensors"),
            metadata={"transformers": __import__("transformers").__version__, "torch": torch.__version__},
        )
        print(f"{out}: {sum(p.numel() for p in model.parameters())} parameters, logits {tuple(logits_img.shape)}")


if __name__ == "__main__":
    main()
