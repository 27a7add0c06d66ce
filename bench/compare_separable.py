#!/usr/bin/env python3
"""Separable filters side by side: convlab (`convlab bench --suite
bench/separable.json`), OpenCV's sepFilter2D (single-channel cases: its
two-pass filter for separable kernels, zero border) and PyTorch's conv2d
(forward), 2 threads each, interleaved rounds, best median per side.

    python3 bench/compare_separable.py --python /work/venv/bin/python [--rounds 3]

The Python needs torch, numpy and opencv-python-headless (bench/compare.py
sets such a venv up). Prints a table; nothing is written.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "bench", "separable.json")
sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare import median_ms  # noqa: E402  (the same timing rule as compare.py)


def gaussian(k):
    import numpy as np
    sigma = k / 6.0
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def time_python(cases):
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    out = {}
    for c in cases:
        k, groups = c["k"][0], c["groups"]
        g = gaussian(k)
        x = np.random.randn(c["n"], c["cin"], c["h"], c["w"]).astype(np.float32)
        w = np.tile(np.outer(g, g), (c["cout"], 1, 1, 1)).astype(np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        with torch.no_grad():
            out[(c["name"], "torch")] = median_ms(
                lambda: F.conv2d(xt, wt, None, 1, c["padding"], 1, groups))
        if c["n"] * c["cin"] == 1:
            plane = x[0, 0]
            out[(c["name"], "opencv")] = median_ms(
                lambda: cv2.sepFilter2D(plane, -1, g, g, borderType=cv2.BORDER_CONSTANT))
    return out


def time_convlab(binary):
    cmd = [binary, "bench", "--suite", SUITE, "--threads", "2", "--json", "--pass", "fwd"]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(d["name"], "convlab"): d["median_ms"] for d in map(json.loads, res.splitlines())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", help="a Python with torch, numpy and cv2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.python and not os.environ.get("CONVLAB_COMPARE_CHILD"):
        env = dict(os.environ, CONVLAB_COMPARE_CHILD="1")
        argv = [a for a in sys.argv[1:]]
        sys.exit(subprocess.call([args.python, os.path.abspath(__file__), *argv], env=env))
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "convlab-cli"], cwd=ROOT)
    binary = os.path.join(ROOT, "target", "release", "convlab")
    cases = json.load(open(SUITE))["conv2d"]
    best = {}
    for r in range(args.rounds):
        sides = [lambda: time_python(cases), lambda: time_convlab(binary)]
        for side in (sides if r % 2 == 0 else sides[::-1]):
            for key, ms in side().items():
                best[key] = min(best.get(key, math.inf), ms)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, convlab {commit}, "
          f"2 threads, forward, best of {args.rounds} interleaved rounds of medians (ms)\n")
    print("| case | convlab | OpenCV sepFilter2D | PyTorch conv2d | vs OpenCV | vs PyTorch |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in cases:
        n = c["name"]
        ours, cv, pt = (best.get((n, s)) for s in ("convlab", "opencv", "torch"))
        ratio = lambda other: f"{other / ours:.2f}x" if other else "-"
        fmt = lambda v: f"{v:.3f}" if v else "-"
        print(f"| {n} | {fmt(ours)} | {fmt(cv)} | {fmt(pt)} | {ratio(cv)} | {ratio(pt)} |")
    print("\nRatios: other's ms / convlab's ms (above 1: convlab faster).")


if __name__ == "__main__":
    main()
