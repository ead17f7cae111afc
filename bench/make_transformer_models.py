#!/usr/bin/env python3
"""Full-size transformer-era vision models for the engine bench (issue 18: "the transformer models of the
ONNX issue once they run"): torchvision's ViT-B/16, ConvNeXt-Tiny and Swin-T, random weights (nothing is
downloaded), each exported with both of torch's ONNX exporters as users export them, batch axis dynamic.

Run in the fixtures venv (torch 2.13 CPU, torchvision 0.28, onnxscript: fixtures/requirements-torch.txt):
    /opt/scion-fixtures-venv/bin/python bench/make_transformer_models.py --out /work/apps/torch

Writes OUT/NAME_ts.onnx (TorchScript exporter, opset 17) and OUT/NAME_dynamo.onnx (dynamo exporter, its
default opset, weights inside the file). These are 100-350 MB: bench inputs, never fixtures.
"""
import argparse
import os
import warnings

import torch

# The venv's torchvision wheel has no compiled C ops; its import registers fake kernels for
# torchvision::nms/qnms and fails unless their schemas exist first (as in fixtures/make_torch_transformers.py).
_library = torch.library.Library("torchvision", "DEF")
_library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
from torchvision.models import convnext_tiny, swin_t, vit_b_16  # noqa: E402

warnings.filterwarnings("ignore")
MODELS = {"vit_b_16": vit_b_16, "convnext_tiny": convnext_tiny, "swin_t": swin_t}


def randomised(model, seed):
    """torchvision's init leaves ViT's head at zero and ConvNeXt's layer scale at 1e-6; redraw every
    parameter so each block changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/work/apps/torch")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for seed, name in enumerate(args.models):
        model = randomised(MODELS[name](), seed)
        example = torch.rand(2, 3, 224, 224)
        path = os.path.join(args.out, f"{name}_ts.onnx")
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        print("wrote", path)
        path = os.path.join(args.out, f"{name}_dynamo.onnx")
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: batch},))
        program.save(path, external_data=False)
        print("wrote", path)


if __name__ == "__main__":
    main()
