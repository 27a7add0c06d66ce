"""convlab from Python against plain PyTorch, side by side in one run.

    python bench/python_speed.py [--rounds 3] [--threads 2] [--lenet-images 60000]
                                 [--resnet-steps 20] [--skip-resnet]

Needs the convlab package (pip install ./python), torch and torchvision.

1. A CPU training epoch of LeNet (Dive into Deep Learning 6.6: sigmoid
   LeNet, Fashion-MNIST's 60000 28x28 images, batch 256, SGD lr 0.9) on
   synthetic images of that shape, patch() off and on, rounds interleaved.
2. Training steps of torchvision's resnet18 (num_classes 10, batch 32,
   3x96x96, SGD momentum 0.9), patch() off and on, rounds interleaved; an
   epoch of STL-10's 5000 training images is 157 such steps.
3. The ceiling: the share of a plain-PyTorch step spent in the ops patch()
   replaces (forward and backward, from torch's profiler); were they free,
   the step would be 1 / (1 - share) times faster.
4. Per-call cost of a tiny op, the chapter's 6x8 edge detection
   (corr2d of a 6x8 image with [[1, -1]], as conv2d on 1x1x6x8):
   convlab.functional on NumPy, convlab.torch without and with autograd,
   torch.nn.functional.

Timings are medians over the rounds with the spread (min-max); on a
machine shared with other work they move a lot: compare within one run.
"""

import argparse
import statistics
import time
import timeit

import numpy as np
import torch
from torch import nn

import convlab
import convlab.functional as cf
import convlab.torch as ct


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def train(model, opt, batches):
    """Seconds for one pass of SGD steps over ``batches``."""
    t0 = time.perf_counter()
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - t0


def interleaved(make, batches, rounds):
    """Median and spread of plain and patched passes, alternating."""
    times = {"torch": [], "convlab": []}
    for r in range(rounds):
        for name in (("torch", "convlab") if r % 2 == 0 else ("convlab", "torch")):
            model, opt = make()
            with ct.patch() if name == "convlab" else torch.enable_grad():
                train(model, opt, batches[:1])  # warm-up step
                times[name].append(train(model, opt, batches))
    return times


def report(title, times, per=1.0, unit="s"):
    med = {k: statistics.median(v) / per for k, v in times.items()}
    for k, v in times.items():
        lo, hi = min(v) / per, max(v) / per
        print(f"  {k:<8} {med[k]:8.3f} {unit}  ({lo:.3f}-{hi:.3f} over {len(v)} rounds)")
    print(f"  speed-up {med['torch'] / med['convlab']:.2f}x  {title}")
    return med


PATCHED_ATEN = (
    "aten::convolution", "aten::convolution_backward",
    "aten::max_pool2d_with_indices", "aten::max_pool2d_with_indices_backward",
    "aten::avg_pool2d", "aten::avg_pool2d_backward",
    "aten::adaptive_avg_pool2d", "aten::_adaptive_avg_pool2d_backward",
    "aten::adaptive_max_pool2d", "aten::adaptive_max_pool2d_backward",
    "aten::im2col", "aten::col2im", "aten::pad",
)


def patched_share(make, batches):
    """The share of a plain step's CPU time in the ops patch() replaces."""
    from torch.profiler import ProfilerActivity, profile

    model, opt = make()
    train(model, opt, batches[:1])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(model, opt, batches[:2])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    inside = 0.0
    for e in events:
        if e.key in PATCHED_ATEN:
            # Their children (mkldnn, copies) count too: take the total.
            inside += e.cpu_time_total
    # Nested entries (convolution -> _convolution -> mkldnn) are counted once
    # through the outermost op's total.
    return min(inside / total, 1.0)


def tiny_op_overhead():
    x = np.ones((6, 8), np.float32)
    x[:, 2:6] = 0
    k = np.array([[1.0, -1.0]], np.float32)
    x4, k4 = x[None, None], k[None, None]
    tx, tk = torch.from_numpy(x4), torch.from_numpy(k4)
    txg = tx.clone().requires_grad_()

    def per_call(f, n=2000):
        return min(timeit.repeat(f, number=n, repeat=7)) / n * 1e6

    rows = [
        ("convlab.functional.corr2d(X, K)", lambda: cf.corr2d(x, k)),
        ("convlab.functional.conv2d (1x1x6x8)", lambda: cf.conv2d(x4, k4)),
        ("convlab.torch.conv2d, no grad", lambda: ct.conv2d(tx, tk)),
        ("convlab.torch.conv2d, autograd", lambda: ct.conv2d(txg, tk)),
        ("torch.nn.functional.conv2d, no grad", lambda: torch.nn.functional.conv2d(tx, tk)),
        ("torch.nn.functional.conv2d, autograd", lambda: torch.nn.functional.conv2d(txg, tk)),
    ]
    print("per call, the chapter's 6x8 edge detection (best of 7 x 2000 calls):")
    for name, f in rows:
        f()
        print(f"  {name:<40} {per_call(f):7.2f} us")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lenet-images", type=int, default=60000)
    ap.add_argument("--resnet-steps", type=int, default=20)
    ap.add_argument("--skip-resnet", action="store_true")
    args = ap.parse_args()
    convlab.set_num_threads(args.threads)  # and torch's: one policy
    print(f"torch {torch.__version__}, convlab {convlab.__version__}, {torch.get_num_threads()} threads each")

    gen = torch.Generator().manual_seed(0)
    n = args.lenet_images
    lenet_batches = [
        (torch.rand(min(256, n - i), 1, 28, 28, generator=gen), torch.randint(0, 10, (min(256, n - i),), generator=gen))
        for i in range(0, n, 256)
    ]

    def make_lenet():
        torch.manual_seed(0)
        m = lenet()
        return m, torch.optim.SGD(m.parameters(), lr=0.9)

    print(f"\nLeNet, one epoch of {n} 28x28 images, batch 256 ({len(lenet_batches)} steps):")
    report("LeNet epoch", interleaved(make_lenet, lenet_batches, args.rounds))
    share = patched_share(make_lenet, lenet_batches)
    print(f"  patched ops: {100 * share:.0f}% of a plain step -> ceiling {1 / (1 - share):.2f}x")

    if not args.skip_resnet:
        import torchvision

        steps = args.resnet_steps
        resnet_batches = [
            (torch.randn(32, 3, 96, 96, generator=gen), torch.randint(0, 10, (32,), generator=gen))
            for _ in range(steps)
        ]

        def make_resnet():
            torch.manual_seed(0)
            m = torchvision.models.resnet18(num_classes=10)
            return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

        print(f"\nresnet18 (10 classes), batch 32 of 3x96x96, {steps} steps per round:")
        med = report("resnet18 step", interleaved(make_resnet, resnet_batches, args.rounds), per=steps, unit="s/step")
        print(f"  an STL-10 epoch (157 steps): torch {157 * med['torch']:.0f} s, convlab {157 * med['convlab']:.0f} s")
        share = patched_share(make_resnet, resnet_batches)
        print(f"  patched ops: {100 * share:.0f}% of a plain step -> ceiling {1 / (1 - share):.2f}x")

    print()
    tiny_op_overhead()


if __name__ == "__main__":
    main()
