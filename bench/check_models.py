#!/usr/bin/env python3
"""Every network of convlab::models against torchvision, through the CLI.

For each architecture: the PyTorch model with seeded random weights (and
BatchNorm statistics away from their defaults) in eval mode, saved with
safetensors and with torch.save, a random input at the architecture's size
saved as .npy; `convlab predict --arch A --weights W -o OUT.npy` must give
PyTorch's logits within the fixtures' tolerance, max|ours - torch| /
max(1, max|torch|) <= 1e-4, from either weights file.

    python3 bench/check_models.py [--convlab target/release/convlab] [--only resnet18]
        [--photo ../shared/data/chelsea.png]

With --photo, also the image path on a real photograph (resnet18, 1000
classes, the same seeded weights): the tensor `convlab predict
--save-input` feeds the network against torchvision.transforms.v2's
ImageNet eval transform of the same file (Resize(256, antialias=True),
CenterCrop(224), ToDtype(float32, scale=True), Normalize), counted in
8-bit steps (1/255/std), and the logits against PyTorch's on
torchvision's tensor.

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
    ap.add_argument("--photo", help="also check the image transform and logits on this PNG/JPEG")
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
    if a.photo:
        failed += check_photo(a.convlab, a.photo, tmp)
    sys.exit(1 if failed else 0)


def check_photo(binary, path, tmp):
    """The image transform and resnet18's logits on a photograph: 0 when
    within the documented tolerance (at most one 8-bit step on at most 1%
    of the values), else 1."""
    from torchvision.io import decode_image
    from torchvision.transforms import v2

    torch.manual_seed(0)
    model = build("resnet18", 1000)
    gen_models.randomise_batch_norm(model, torch.Generator().manual_seed(1))
    model.eval()
    weights = os.path.join(tmp, "photo_resnet18.safetensors")
    save_file({n: t.contiguous() for n, t in model.state_dict().items()}, weights)
    image = decode_image(path, mode=torchvision.io.ImageReadMode.RGB)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    t = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224),
                    v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])(image)[None]
    seen, logits = os.path.join(tmp, "photo_x.npy"), os.path.join(tmp, "photo_y.npy")
    r = subprocess.run([binary, "predict", "--arch", "resnet18", "--weights", weights, "--top", "1",
                        path, "-o", logits, "--save-input", seen], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"photo FAILED: {r.stderr.strip()}")
        return 1
    ours = np.load(seen)
    step = (1 / 255) / np.array(std, dtype=np.float32)[None, :, None, None]
    steps = np.abs(ours - t.numpy()) / step
    off = int((steps > 1e-3).sum())
    print(f"photo {os.path.basename(path)}: {off} of {steps.size} values differ from torchvision's "
          f"({100 * off / steps.size:.3f}%), at most {steps.max():.3f} 8-bit steps")
    with torch.no_grad():
        want = model(t).numpy()
        want_ours = model(torch.from_numpy(ours)).numpy()
    got = np.load(logits)
    scale = max(1.0, float(np.abs(want).max()))
    err_same = float(np.abs(got - want_ours).max() / scale)
    err_tv = float(np.abs(got - want).max() / scale)
    print(f"photo logits: relative error {err_same:.2e} against PyTorch on convlab's tensor, "
          f"{err_tv:.2e} against PyTorch on torchvision's; top-1 {int(got.argmax())} vs {int(want.argmax())}")
    ok = steps.max() <= 1.001 and off <= 0.01 * steps.size and err_same <= TOL
    return 0 if ok else 1


if __name__ == "__main__":
    main()
