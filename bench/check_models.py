#!/usr/bin/env python3
"""Every network of convlab::models against torchvision, through the CLI.

For each architecture: the PyTorch model with seeded random weights (and
BatchNorm statistics away from their defaults) in eval mode, saved with
safetensors and with torch.save, a random input at the architecture's size
saved as .npy; `convlab predict --arch A --weights W -o OUT.npy` must give
PyTorch's logits within the fixtures' tolerance, max|ours - torch| /
max(1, max|torch|) <= 1e-4, from either weights file.

    python3 bench/check_models.py [--convlab target/release/convlab] [--only resnet18]

Needs torch and torchvision, so it is a check to run, not a CI test.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import gen_models  # noqa: E402  (the book's LeNet and NiN, and BatchNorm randomisation)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4
ARCHS = [
    ("lenet", (1, 28, 28), 10),
    ("nin", (1, 224, 224), 10),
    ("alexnet", (3, 224, 224), 1000),
    ("vgg11", (3, 224, 224), 1000),
    ("googlenet", (3, 224, 224), 1000),
    ("resnet18", (3, 224, 224), 1000),
    ("resnet50", (3, 224, 224), 1000),
    ("densenet121", (3, 224, 224), 1000),
]


def build(arch, k):
    if arch == "lenet":
        return gen_models.lenet(k)
    return gen_models.torchvision_model(arch, k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convlab", default=os.path.join(ROOT, "target", "release", "convlab"))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="convlab-check-")
    failed = 0
    for arch, chw, k in ARCHS:
        if a.only and a.only != arch:
            continue
        torch.manual_seed(0)
        model = build(arch, k)
        gen_models.randomise_batch_norm(model, torch.Generator().manual_seed(1))
        model.eval()
        x = torch.randn((2,) + chw, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            want = model(x).numpy()
        sd = {n: t.contiguous() for n, t in model.state_dict().items()}
        files = {"safetensors": os.path.join(tmp, f"{arch}.safetensors"), "pth": os.path.join(tmp, f"{arch}.pth")}
        save_file(sd, files["safetensors"])
        torch.save(sd, files["pth"])
        xin = os.path.join(tmp, f"{arch}_x.npy")
        np.save(xin, x.numpy())
        for kind, path in files.items():
            out = os.path.join(tmp, f"{arch}_{kind}_y.npy")
            r = subprocess.run([a.convlab, "predict", "--arch", arch, "--weights", path, "--num-classes", str(k),
                                "--top", "1", xin, "-o", out], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{arch:12s} {kind:12s} FAILED: {r.stderr.strip()}")
                failed += 1
                continue
            got = np.load(out)
            err = float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))
            ok = err <= TOL
            failed += not ok
            print(f"{arch:12s} {kind:12s} relative error {err:.2e} {'ok' if ok else 'OVER ' + str(TOL)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
