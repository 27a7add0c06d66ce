#!/usr/bin/env python3
"""Peak memory of `convlab bench` per suite case against the issue's bound:
the case's tensors plus 64 MiB of scratch.

    python3 bench/peak_memory.py [--binary target/release/convlab]

Each case runs alone (`convlab bench --filter NAME --reps 3`, forward and
backward) under GNU time; its peak RSS, less the RSS of a run on the
smallest case (the binary, its libraries and the allocator's arenas), is
compared with the tensors one pass holds at once. For a convolution:
input, weight, output, grad_output, and the three gradients; for a pool:
input, output, indices (8 bytes), grad_output, grad_input. Prints a table;
exits 1 if a case exceeds its bound.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
SCRATCH = 64 * MIB


def conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def tensor_bytes(case, kind):
    f = 4
    if kind == "conv2d":
        kh, kw = case["k"]
        oh = conv_out(case["h"], kh, case["stride"], case["padding"], case["dilation"])
        ow = conv_out(case["w"], kw, case["stride"], case["padding"], case["dilation"])
        x = case["n"] * case["cin"] * case["h"] * case["w"]
        wt = case["cout"] * case["cin"] // case["groups"] * kh * kw
        y = case["n"] * case["cout"] * oh * ow
        # x, w, y, grad_output, grad_input, grad_weight (+ bias: negligible)
        return f * (2 * x + 2 * wt + 2 * y)
    x = case["n"] * case["c"] * case["h"] * case["w"]
    if case["op"] == "adaptive_avg_pool2d":
        y = case["n"] * case["c"]
    else:
        y = case["n"] * case["c"] * conv_out(case["h"], case["k"], case["stride"], case["padding"], 1) ** 2
    return f * (2 * x + 2 * y) + 8 * y


def peak_rss(binary, name):
    r = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", binary, "bench", "--filter", name, "--reps", "3", "--threads", "2"],
        capture_output=True, text=True, check=True,
    )
    m = re.search(r"MAXRSS (\d+)", r.stderr)
    return int(m.group(1)) * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "convlab"))
    args = ap.parse_args()
    suite = json.load(open(os.path.join(ROOT, "bench", "suite.json")))
    base = peak_rss(args.binary, "d2l_edge_1x2")
    print(f"baseline RSS (d2l_edge_1x2 run): {base / MIB:.1f} MiB")
    print(f"{'case':22} {'tensors MiB':>12} {'peak-base MiB':>14} {'scratch MiB':>12} {'within':>7}")
    bad = 0
    for kind in ("conv2d", "pool"):
        for case in suite[kind]:
            t = tensor_bytes(case, kind)
            extra = peak_rss(args.binary, case["name"]) - base
            ok = extra <= t + SCRATCH
            bad += not ok
            print(f"{case['name']:22} {t / MIB:12.1f} {extra / MIB:14.1f} {(extra - t) / MIB:12.1f} {'yes' if ok else 'NO':>7}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
