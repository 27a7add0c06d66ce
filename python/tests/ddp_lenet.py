"""Two-process DDP runs (gloo, loopback) of the book's LeNet, without and
with convlab.torch.patch(); rank 0 of each saves the final weights.

    python ddp_lenet.py OUT_DIR      # writes OUT_DIR/plain.pt, OUT_DIR/patched.pt
"""

import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import convlab.torch

STEPS = 5
BATCH = 16  # per process


def lenet():
    """Dive into Deep Learning 6.6."""
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


def worker(rank, world, port, out, patched):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(lenet())
    opt = torch.optim.SGD(model.parameters(), lr=0.9)
    data = torch.Generator().manual_seed(100 + rank)  # each process its own shard
    if patched:
        convlab.torch.patch()
    for _ in range(STEPS):
        x = torch.rand(BATCH, 1, 28, 28, generator=data)
        y = torch.randint(0, 10, (BATCH,), generator=data)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    if patched:
        routed = convlab.torch.stats()["conv2d"]["routed"]
        assert routed == 2 * STEPS, convlab.torch.stats()
        convlab.torch.unpatch()
    if rank == 0:
        torch.save(model.module.state_dict(), out)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    # Forked workers share this process's imports (torch takes seconds to
    # import); nothing has started torch's threads yet.
    for name, patched in (("plain", False), ("patched", True)):
        out = os.path.join(sys.argv[1], f"{name}.pt")
        mp.start_processes(worker, args=(2, free_port(), out, patched), nprocs=2, start_method="fork")
