#!/usr/bin/env python3
"""Pooling side by side with PyTorch, 2 threads each, same run.

    python3 bench/pool_side_by_side.py [--binary target/release/convlab]
                                       [--filter maxpool3d] [--rounds 8]

Alternates rounds of `convlab bench --json --best --threads 2` and PyTorch
(best repetition of a 0.4 s budget per pass, as `--best` does) on the
pool cases of bench/suite.json whose name contains --filter, and prints
per case and pass the minimum and median over rounds of each side and
the speed-up (PyTorch ms / convlab ms) of both. The spread between
minimum and median says how noisy the machine was. Forward is the op
without indices for both (PyTorch's CPU max_pool3d computes them
anyway); backward is the gradient from the saved indices.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_ms(fn, budget=0.4, min_reps=5):
    fn()
    best, reps, start = float("inf"), 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < budget:
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t) * 1e3)
        reps += 1
    return best


def torch_round(cases):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    ops = {"max_pool2d": F.max_pool2d, "max_pool3d": F.max_pool3d, "avg_pool2d": F.avg_pool2d}
    out = {}
    for c in cases:
        dims = [c["n"], c["c"]] + ([c["d"]] if "d" in c else []) + [c["h"], c["w"]]
        x = torch.randn(*dims, requires_grad=True)
        f = lambda t: ops[c["op"]](t, c["k"], c["stride"], c["padding"])
        with torch.no_grad():
            out[(c["name"], "fwd")] = best_ms(lambda: f(x))
        y = f(x)
        g = torch.randn_like(y)
        out[(c["name"], "bwd")] = best_ms(lambda: torch.autograd.grad(y, [x], g, retain_graph=True))
    return out


def convlab_round(binary, name_filter):
    cmd = [binary, "bench", "--json", "--best", "--threads", "2", "--filter", name_filter]
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    return {(r["name"], r["pass"]): r["median_ms"] for r in map(json.loads, lines)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "convlab"))
    ap.add_argument("--filter", default="maxpool3d")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    with open(os.path.join(ROOT, "bench", "suite.json")) as f:
        cases = [c for c in json.load(f)["pool"] if args.filter in c["name"]]
    theirs, ours = {}, {}
    for r in range(args.rounds):
        sides = [("torch", lambda: torch_round(cases)), ("convlab", lambda: convlab_round(args.binary, args.filter))]
        for side, run in sides if r % 2 == 0 else sides[::-1]:
            for k, v in run().items():
                (theirs if side == "torch" else ours).setdefault(k, []).append(v)
    print(f"{'case':24} {'pass':4} {'torch min':>9} {'med':>8} {'convlab min':>11} {'med':>8} {'x (min)':>7} {'x (med)':>7}")
    for k in sorted(ours):
        t, o = theirs[k], ours[k]
        tm, om, tmed, omed = min(t), min(o), statistics.median(t), statistics.median(o)
        print(f"{k[0]:24} {k[1]:4} {tm:9.3f} {tmed:8.3f} {om:11.3f} {omed:8.3f} {tm / om:7.2f} {tmed / omed:7.2f}")


if __name__ == "__main__":
    main()
