#!/usr/bin/env python3
"""Side-by-side timing of whole networks: PyTorch (eval + no_grad), ONNX
Runtime (every graph optimisation on) and convlab, 2 threads each, on
bench/networks.json.

    python3 bench/networks.py [--python PY] [--rounds 3] [--filter NAME]
                              [--convlab target/release/convlab] [--no-write]

Each engine runs in a process of its own (so its peak RSS is its own), one
case at a time, and the rounds interleave the engines: PyTorch, ONNX
Runtime, convlab, PyTorch, ... Every process times `reps` calls after two
warm-up calls and reports the median; a case keeps each engine's best
median over the rounds. Peak memory is the process's maximum RSS.
Writes the network table of BENCHMARKS.md unless --no-write.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "bench", "networks.json")
BEGIN = "<!-- networks.py: begin -->"
END = "<!-- networks.py: end -->"
THREADS = 2


def build_torch_model(case):
    import torch
    import torchvision

    torch.manual_seed(0)
    kw = {"num_classes": case["num_classes"], "weights": None}
    if case["arch"] == "googlenet":
        kw.update(aux_logits=False, init_weights=True, transform_input=False)
    return getattr(torchvision.models, case["arch"])(**kw)


def median_of(fn, reps):
    fn()
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_torch(case, reps):
    import torch

    torch.set_num_threads(THREADS)
    model = build_torch_model(case)
    x = torch.randn(case["n"], case["c"], case["h"], case["w"])
    if case["mode"] == "infer":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

    else:
        model.train()
        sgd = case["optimizer"]["sgd"]
        opt = torch.optim.SGD(model.parameters(), lr=sgd["lr"], momentum=sgd["momentum"])
        labels = torch.arange(case["n"]) % case["num_classes"]
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(model(x), labels).backward()
            opt.step()

    return {"ms": median_of(step, reps), "rss_mb": peak_rss_mb()}


def worker_export(case, path):
    import torch

    model = build_torch_model(case).eval()
    x = torch.randn(case["n"], case["c"], case["h"], case["w"])
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], dynamo=False)
    return {"path": path}


def worker_onnx(case, reps, path):
    # Only numpy and onnxruntime in this process, so its RSS is the runtime's.
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((case["n"], case["c"], case["h"], case["w"]), dtype=np.float32)
    return {"ms": median_of(lambda: sess.run(None, {"x": x}), reps), "rss_mb": peak_rss_mb()}


def run_worker(py, engine, case, reps, path=""):
    out = subprocess.run(
        [py, os.path.abspath(__file__), "--worker", engine, "--case", json.dumps(case), "--reps", str(reps),
         "--path", path],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{engine} worker failed on {case['name']}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_convlab(exe, case, reps):
    out = subprocess.run(
        [exe, "bench", "--networks", SUITE, "--filter", case["name"], "--threads", str(THREADS),
         "--reps", str(reps), "--json"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"convlab failed on {case['name']}")
    for line in out.stdout.splitlines():
        r = json.loads(line)
        if r.get("name") == case["name"]:
            return {"ms": r["median_ms"], "rss_mb": r["peak_rss_mb"]}
    raise SystemExit(f"convlab printed no result for {case['name']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=0, help="timed calls per process (default: by case)")
    ap.add_argument("--filter", default="")
    ap.add_argument("--convlab", default=os.path.join(ROOT, "target", "release", "convlab"))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker")
    ap.add_argument("--case")
    ap.add_argument("--path", default="")
    a = ap.parse_args()
    if a.worker:
        case = json.loads(a.case)
        if a.worker == "export":
            print(json.dumps(worker_export(case, a.path)))
        elif a.worker == "onnx":
            print(json.dumps(worker_onnx(case, a.reps, a.path)))
        else:
            print(json.dumps(worker_torch(case, a.reps)))
        return
    cases = [c for c in json.load(open(SUITE))["networks"] if a.filter in c["name"]]
    best = {}
    tmp = tempfile.mkdtemp(prefix="convlab-networks-")
    onnx_path = {}
    for c in cases:
        if c["mode"] == "infer":
            onnx_path[c["name"]] = os.path.join(tmp, c["name"] + ".onnx")
            run_worker(a.python, "export", c, 0, onnx_path[c["name"]])
    for r in range(a.rounds):
        for c in cases:
            reps = a.reps or (5 if c["mode"] == "train" or c["n"] > 1 or c["arch"] == "vgg11" else 15)
            for engine in ("torch", "onnx", "convlab"):
                if engine == "onnx" and c["mode"] != "infer":
                    continue
                if engine == "convlab":
                    res = run_convlab(a.convlab, c, reps)
                else:
                    res = run_worker(a.python, engine, c, reps, onnx_path.get(c["name"], ""))
                key = (c["name"], engine)
                prev = best.get(key)
                if prev is None or res["ms"] < prev["ms"]:
                    best[key] = dict(res, rss_mb=max(res["rss_mb"], prev["rss_mb"] if prev else 0))
                print(f"round {r + 1} {c['name']:20s} {engine:8s} {res['ms']:9.2f} ms  {res['rss_mb']:7.0f} MB",
                      flush=True)
    lines = table(cases, best, a.python)
    print("\n".join(lines))
    if not a.no_write:
        write_benchmarks(lines)


def versions(python):
    """PyTorch's and ONNX Runtime's versions, from the engines' interpreter
    (this script may run under another Python)."""
    code = "import torch, onnxruntime; print(torch.__version__, onnxruntime.__version__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.split()
    return (out + ["?", "?"])[:2]


def table(cases, best, python):
    torch_version, ort_version = versions(python)
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    out = [
        f"Generated by `bench/networks.py` at {commit} on {cpu}, {THREADS} threads, "
        f"PyTorch {torch_version}, ONNX Runtime {ort_version}; best median per engine.",
        "",
        "| network | PyTorch ms | ONNX Runtime ms | convlab ms | vs PyTorch | vs ORT | peak RSS MB (PT / ORT / convlab) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in cases:
        t, o, v = (best.get((c["name"], e)) for e in ("torch", "onnx", "convlab"))
        fmt = lambda r: f"{r['ms']:.2f}" if r else "—"
        ratio = lambda a, b: f"{a['ms'] / b['ms']:.2f}x" if a and b else "—"
        rss = " / ".join(f"{r['rss_mb']:.0f}" if r else "—" for r in (t, o, v))
        out.append(f"| {c['name']} | {fmt(t)} | {fmt(o)} | {fmt(v)} | {ratio(t, v)} | {ratio(o, v)} | {rss} |")
    return out


def write_benchmarks(lines):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read()
    if BEGIN not in text:
        print(f"BENCHMARKS.md has no {BEGIN} marker; table not written")
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    open(path, "w").write(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


if __name__ == "__main__":
    main()
