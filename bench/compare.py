#!/usr/bin/env python3
"""Side-by-side timing of convlab against PyTorch (and OpenCV / scipy for the
single-image cases) on bench/suite.json, 2 threads each.

    python3 bench/compare.py [--python /work/venv/bin/python] [--rounds 2]
                             [--filter NAME] [--no-write]

Creates (or reuses) a venv, default bench/.venv, and installs torch, numpy,
scipy and opencv-python-headless there if missing; builds the release
binary; then alternates rounds of PyTorch timing and `convlab bench --json
--threads 2`, keeping each side's best median per case. Prints the table,
the ratios (PyTorch ms / convlab ms: above 1 means convlab is faster) and
their geometric means, and regenerates the measured section of
BENCHMARKS.md at the repo root (date, CPU, git commit).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "bench", "suite.json")
PKGS = ["torch", "numpy", "scipy", "opencv-python-headless"]
BEGIN = "<!-- compare.py: begin -->"
END = "<!-- compare.py: end -->"


def ensure_python(args):
    """Re-run this script under a Python that has the packages."""
    if os.environ.get("CONVLAB_COMPARE_CHILD"):
        return
    py = args.python
    if py is None:
        venv = os.path.join(ROOT, "bench", ".venv")
        py = os.path.join(venv, "bin", "python")
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", venv])
    probe = "import torch, numpy, scipy, cv2"
    if subprocess.call([py, "-c", probe], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", *PKGS])
    env = dict(os.environ, CONVLAB_COMPARE_CHILD="1")
    sys.exit(subprocess.call([py, os.path.abspath(__file__), *sys.argv[1:]], env=env))


def median_ms(fn, budget=0.4, min_reps=5):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget and len(times) < 100000):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def time_torch(suite, name_filter):
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    torch.manual_seed(0)
    out = {}
    for c in suite["conv2d"]:
        if name_filter and name_filter not in c["name"]:
            continue
        kh, kw = pair(c["k"])
        x = torch.randn(c["n"], c["cin"], c["h"], c["w"], requires_grad=True)
        w = torch.randn(c["cout"], c["cin"] // c["groups"], kh, kw, requires_grad=True)
        b = torch.randn(c["cout"], requires_grad=True) if c["bias"] else None
        kw_args = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
        with torch.no_grad():
            fwd = median_ms(lambda: F.conv2d(x, w, b, **kw_args))
        y = F.conv2d(x, w, b, **kw_args)
        go = torch.randn_like(y)
        inputs = [x, w] + ([b] if b is not None else [])
        bwd = median_ms(lambda: torch.autograd.grad(y, inputs, go, retain_graph=True))
        out[(c["name"], "fwd")] = fwd
        out[(c["name"], "bwd")] = bwd
        if c["name"] == "image_3x3_1080p":
            import cv2

            cv2.setNumThreads(2)
            img = np.random.randn(c["h"], c["w"]).astype(np.float32)
            k = np.random.randn(3, 3).astype(np.float32)
            out[(c["name"], "opencv")] = median_ms(
                lambda: cv2.filter2D(img, -1, k, borderType=cv2.BORDER_CONSTANT))
        if c["name"] == "image_31x31":
            from scipy.signal import fftconvolve

            img = np.random.randn(c["h"], c["w"]).astype(np.float32)
            k = np.random.randn(31, 31).astype(np.float32)
            out[(c["name"], "scipy")] = median_ms(lambda: fftconvolve(img, k, mode="same"))
    for c in suite.get("conv3d", []):
        if name_filter and name_filter not in c["name"]:
            continue
        x = torch.randn(c["n"], c["cin"], c["d"], c["h"], c["w"], requires_grad=True)
        w = torch.randn(c["cout"], c["cin"] // c["groups"], *c["k"], requires_grad=True)
        b = torch.randn(c["cout"], requires_grad=True) if c["bias"] else None
        kw_args = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
        with torch.no_grad():
            out[(c["name"], "fwd")] = median_ms(lambda: F.conv3d(x, w, b, **kw_args))
        y = F.conv3d(x, w, b, **kw_args)
        go = torch.randn_like(y)
        inputs = [x, w] + ([b] if b is not None else [])
        out[(c["name"], "bwd")] = median_ms(lambda: torch.autograd.grad(y, inputs, go, retain_graph=True))
    for c in suite.get("resample", []):
        if name_filter and name_filter not in c["name"]:
            continue
        x = torch.randn(c["n"], c["c"], c["h"], c["w"], requires_grad=True)
        f = lambda t: F.interpolate(t, scale_factor=c["scale"], mode=c["mode"])
        with torch.no_grad():
            out[(c["name"], "fwd")] = median_ms(lambda: f(x))
        y = f(x)
        go = torch.randn_like(y)
        out[(c["name"], "bwd")] = median_ms(lambda: torch.autograd.grad(y, [x], go, retain_graph=True))
    for c in suite.get("pool", []):
        if name_filter and name_filter not in c["name"]:
            continue
        dims = [c["n"], c["c"]] + ([c["d"]] if "d" in c else []) + [c["h"], c["w"]]
        x = torch.randn(*dims, requires_grad=True)
        if c["op"] == "max_pool2d":
            f = lambda t: F.max_pool2d(t, c["k"], c["stride"], c["padding"])
        elif c["op"] == "max_pool3d":
            f = lambda t: F.max_pool3d(t, c["k"], c["stride"], c["padding"])
        elif c["op"] == "avg_pool2d":
            f = lambda t: F.avg_pool2d(t, c["k"], c["stride"], c["padding"])
        else:
            f = lambda t: F.adaptive_avg_pool2d(t, c["output_size"])
        with torch.no_grad():
            out[(c["name"], "fwd")] = median_ms(lambda: f(x))
        y = f(x)
        go = torch.randn_like(y)
        out[(c["name"], "bwd")] = median_ms(lambda: torch.autograd.grad(y, [x], go, retain_graph=True))
    return out


def time_convlab(binary, name_filter):
    cmd = [binary, "bench", "--json", "--threads", "2"]
    if name_filter:
        cmd += ["--filter", name_filter]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    out = {}
    for line in res.splitlines():
        r = json.loads(line)
        out[(r["name"], r["pass"])] = r["median_ms"]
    return out


def best(rounds):
    merged = {}
    for r in rounds:
        for k, v in r.items():
            merged[k] = min(v, merged.get(k, math.inf))
    return merged


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
            else:
                model = "unknown CPU"
        return f"{model}, {os.cpu_count()} logical CPUs"
    except OSError:
        return "unknown machine"


def main():
    ensure_python(parse_args())
    args = parse_args()
    with open(SUITE) as f:
        suite = json.load(f)
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "convlab-cli"], cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "convlab")
    import torch

    torch_rounds, ours_rounds = [], []
    for _ in range(args.rounds):
        torch_rounds.append(time_torch(suite, args.filter))
        ours_rounds.append(time_convlab(binary, args.filter))
    tr, ours = best(torch_rounds), best(ours_rounds)

    pool_names = {c["name"] for c in suite.get("pool", [])}
    resample_names = {c["name"] for c in suite.get("resample", [])}
    lines = ["| case | pass | PyTorch ms | convlab ms | speed-up | other |",
             "|---|---|---:|---:|---:|---|"]
    groups = {"conv fwd": [], "conv bwd": [], "pool fwd": [], "pool bwd": [],
              "resample fwd": [], "resample bwd": []}
    cases = suite["conv2d"] + suite.get("conv3d", []) + suite.get("pool", []) + suite.get("resample", [])
    for c in cases:
        for p in ("fwd", "bwd"):
            k = (c["name"], p)
            if k not in tr or k not in ours:
                continue
            ratio = tr[k] / ours[k]
            kind = "pool" if c["name"] in pool_names else "resample" if c["name"] in resample_names else "conv"
            groups[f"{kind} {p}"].append(ratio)
            other = ""
            if p == "fwd" and (c["name"], "opencv") in tr:
                o = tr[(c["name"], "opencv")]
                other = f"OpenCV filter2D {o:.3f} ms ({o / ours[k]:.2f}x)"
            if p == "fwd" and (c["name"], "scipy") in tr:
                o = tr[(c["name"], "scipy")]
                other = f"scipy fftconvolve {o:.3f} ms ({o / ours[k]:.2f}x)"
            lines.append(f"| {c['name']} | {p} | {tr[k]:.4f} | {ours[k]:.4f} | {ratio:.2f}x | {other} |")
    lines.append("")
    for g, xs in groups.items():
        if xs:
            lines.append(f"- geometric mean speed-up, {g}: **{geomean(xs):.2f}x** ({len(xs)} cases)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    # BENCHMARKS.md itself (an earlier run's table) does not change what is measured.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)BENCHMARKS.md"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    header = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}; "
        f"convlab commit {commit}{' (with local changes)' if dirty else ''}; PyTorch {torch.__version__}; "
        f"2 threads each; best of {args.rounds} interleaved rounds of medians; "
        f"1-minute load average at the end {load:.1f}.",
        "Speed-up = PyTorch ms / convlab ms (above 1: convlab faster).",
        "",
    ]
    text = "\n".join(header + lines)
    print(text)
    if args.no_write or args.filter:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else (
        "# Benchmarks\n\nRegenerate the section below with `python3 bench/compare.py "
        "--python /work/venv/bin/python` (any venv with torch works; by default one is made in "
        "bench/.venv).\n\n")
    section = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(new)
    print(f"\nwrote {path}")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", help="a Python with (or to receive) torch, numpy, scipy, opencv")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--filter", help="only cases whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    return ap.parse_args()


if __name__ == "__main__":
    main()
