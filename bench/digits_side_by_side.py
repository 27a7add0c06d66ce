#!/usr/bin/env python3
"""convlab train-digits next to the same training in PyTorch.

Same data (assets/digits.csv.gz, pixels / 16), split (image i is test when
i % 5 == 0: 360 test, 1437 train), network, loss, schedule (minibatches of
32 reshuffled every epoch, SGD lr 0.05 momentum 0.9, 20 epochs, test accuracy
after every epoch) and 2 threads. The two shuffle and initialise from
different generators, so their accuracies differ by a few images; the check
that must hold exactly is the last one: PyTorch, given convlab's saved
weights, gets convlab's test accuracy.

Usage: /work/venv/bin/python bench/digits_side_by_side.py [--epochs N] [--runs R]
(builds nothing: run `cargo build --release` first).
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def load():
    rows = [list(map(int, l.split(","))) for l in
            gzip.open(ROOT / "assets" / "digits.csv.gz", "rt").read().split("\n") if l.strip()]
    t = torch.tensor(rows, dtype=torch.float32)
    x, y = (t[:, :64] / 16.0).reshape(-1, 1, 8, 8), t[:, 64].long()
    test = torch.arange(len(rows)) % 5 == 0
    return x[~test], y[~test], x[test], y[test]


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item() * 100


def torch_train(epochs, seed):
    xtr, ytr, xte, yte = load()
    torch.manual_seed(seed)
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 32):
            idx = perm[i:i + 32]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        accuracy(model, xte, yte)  # as convlab: test accuracy every epoch
    return time.perf_counter() - t0, accuracy(model, xte, yte)


def convlab_train(epochs, save):
    exe = ROOT / "target" / "release" / "convlab"
    if not exe.exists():
        sys.exit(f"{exe} is missing: run `cargo build --release` first")
    t0 = time.perf_counter()
    out = subprocess.run([str(exe), "train-digits", "--no-plot", "--epochs", str(epochs),
                          "--save", str(save)], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    acc = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    train_s = float(re.search(r"epochs in ([\d.]+) s", out).group(1))
    return train_s, wall, acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="report the fastest of R runs each")
    a = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores; {a.epochs} epochs; best of {a.runs} runs")

    pt = [torch_train(a.epochs, seed) for seed in range(a.runs)]
    with tempfile.TemporaryDirectory() as d:
        save = Path(d) / "digits.safetensors"
        cl = [convlab_train(a.epochs, save) for _ in range(a.runs)]
        from safetensors.torch import load_file
        model = net()
        model.load_state_dict(load_file(str(save)))
        _, _, xte, yte = load()
        pt_with_cl = accuracy(model, xte, yte)

    print(f"{'':34}{'training (s)':>14}{'test acc (%)':>14}")
    for i, (s, acc) in enumerate(pt):
        print(f"{'PyTorch seed ' + str(i):34}{s:14.3f}{acc:14.2f}")
    for i, (s, wall, acc) in enumerate(cl):
        print(f"{'convlab seed 0 (process ' + format(wall, '.2f') + ' s)':34}{s:14.3f}{acc:14.2f}")
    best_pt, best_cl = min(s for s, _ in pt), min(s for s, _, _ in cl)
    print(f"fastest: PyTorch {best_pt:.3f} s, convlab {best_cl:.3f} s "
          f"({best_pt / best_cl:.2f}x)")
    cl_acc = cl[-1][2]
    same = abs(pt_with_cl - cl_acc) < 1e-9 or round(pt_with_cl, 2) == cl_acc
    print(f"PyTorch with convlab's weights: {pt_with_cl:.2f}% test accuracy "
          f"(convlab reported {cl_acc:.2f}%): {'same' if same else 'DIFFERENT'}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
