"""Dive into Deep Learning, chapter 6 (convolutional neural networks), cell
by cell with convlab from Python: NumPy arrays through convlab.functional,
torch tensors through convlab.torch, and the book's LeNet trained with
torch.nn routed to convlab by convlab.torch.patch().

    pip install ./python torch
    python examples/chapter6.py

Each cell prints what it shows, then the numbers (tensors in PyTorch's
format), so the output can be held next to the book.
"""

import gzip
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import convlab
import convlab.functional as cf
import convlab.torch as ct

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def cell(title):
    print(f"\n# {title}")


def show(a):
    print(convlab.format_tensor(a))


# 6.2.1 ----------------------------------------------------------------------
cell("6.2.1 corr2d: X = arange(9) cross-correlated with K = [[0, 1], [2, 3]]")
X = np.arange(9.0).reshape(3, 3)
K = np.array([[0.0, 1.0], [2.0, 3.0]])
show(convlab.corr2d(X, K))
print("the same cell on torch tensors:")
print(ct.corr2d(torch.arange(9.0).reshape(3, 3), torch.tensor(K, dtype=torch.float32)))


# 6.2.2 ----------------------------------------------------------------------
class Conv2D(nn.Module):
    """The book's hand-written layer: corr2d plus a bias, differentiable
    through convlab's backward pass."""

    def __init__(self, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return ct.corr2d(x, self.weight) + self.bias


cell("6.2.3 edge detection: a 6x8 image with a dark band, K = [[1, -1]]")
img = np.ones((6, 8), np.float32)
img[:, 2:6] = 0
edge = np.array([[1.0, -1.0]], np.float32)
Y = convlab.corr2d(img, edge)
show(Y)
print("the transposed image has no vertical edges:")
show(convlab.corr2d(img.T, edge))


# 6.2.4 ----------------------------------------------------------------------
cell("6.2.4 learning the kernel back: the book's loop, lr 3e-2, 10 steps (torch autograd, convlab's gradients)")
torch.manual_seed(0)
layer = Conv2D((1, 2))
with torch.no_grad():
    layer.weight.copy_(torch.tensor([[0.3, 0.7]]))
Xt, Yt = torch.from_numpy(img), torch.from_numpy(Y)
for i in range(10):
    loss = ((layer(Xt) - Yt) ** 2).sum()
    layer.zero_grad()
    loss.backward()
    with torch.no_grad():
        layer.weight -= 3e-2 * layer.weight.grad
        layer.bias -= 3e-2 * layer.bias.grad
    if (i + 1) % 2 == 0:
        print(f"epoch {i + 1}, loss {loss.item():.3f}")
print(layer.weight.data)
print("convlab's trainer, which also notices divergence and picks a stable rate:")
r = convlab.learn_kernel(img, Y, (1, 2), init=[[0.3, 0.7]], lr=3e-2, steps=10)
show(r.kernel)
x_bad = np.ones((6, 8), np.float32)
x_bad[:, 3] = 0
r = convlab.learn_kernel(x_bad, convlab.corr2d(x_bad, [[-1.0, 1.0]]), (1, 2), init=[[0.3, 0.7]], lr=3e-2)
print(r.outcome + ":", r.message)


# 6.2.6 ----------------------------------------------------------------------
cell("6.2.6 receptive fields of a small stack on a 40x40 input")
print(convlab.receptive_field("conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2", 40))


# 6.3 ------------------------------------------------------------------------
cell("6.3 padding and stride: output shapes of an 8x8 input")
x = np.random.default_rng(0).random((1, 1, 8, 8), np.float32)
for k, p, s in [(3, 1, 1), ((5, 3), (2, 1), 1), (3, 1, 2), ((3, 5), (0, 1), (3, 4))]:
    y = cf.conv2d(x, np.ones((1, 1, *np.broadcast_to(k, 2)), np.float32), None, s, p)
    print(f"kernel {k}, padding {p}, stride {s}: {y.shape[2:]}")
print("padding='same' keeps the size:", cf.conv2d(x, np.ones((1, 1, 4, 3), np.float32), padding="same").shape[2:])


# 6.4 ------------------------------------------------------------------------
cell("6.4 multiple input channels: two 3x3 channels, two 2x2 kernels, summed")
X2 = np.stack([np.arange(9.0).reshape(3, 3), np.arange(1.0, 10.0).reshape(3, 3)])
K2 = np.stack([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
show(cf.conv2d(X2[None], K2[None])[0, 0])
print("three output channels (K, K+1, K+2):")
K3 = np.stack([K2, K2 + 1, K2 + 2])
show(cf.conv2d(X2[None], K3)[0])
print("a 1x1 convolution is a matrix product over channels:")
x11 = np.random.default_rng(1).normal(size=(3, 3, 3)).astype(np.float32)
k11 = np.random.default_rng(2).normal(size=(2, 3, 1, 1)).astype(np.float32)
y1 = cf.conv2d(x11[None], k11)[0]
y2 = (k11[:, :, 0, 0] @ x11.reshape(3, 9)).reshape(2, 3, 3)
print("max difference:", float(np.abs(y1 - y2).max()))


# 6.5 ------------------------------------------------------------------------
cell("6.5 pooling: 2x2 max and average pooling of arange(9)")
X9 = np.arange(9.0, dtype=np.float32).reshape(1, 3, 3)
show(cf.max_pool2d(X9, 2, 1)[0])
show(cf.avg_pool2d(X9, 2, 1)[0])
X16 = np.arange(16.0, dtype=np.float32).reshape(1, 1, 4, 4)
print("3x3 windows with padding 1 and stride 2:")
show(cf.max_pool2d(X16, 3, padding=1, stride=2)[0, 0])
y, idx = cf.max_pool2d(X16, 2, return_indices=True)
print("2x2 max pooling with the indices backward needs:")
show(y[0, 0])
print(idx[0, 0])
print("gradient of the sum: ones where the maxima were")
show(cf.max_pool2d_backward(np.ones_like(y), X16.shape, idx)[0, 0])


# 6.6 ------------------------------------------------------------------------
cell(
    "6.6 LeNet on the UCI digits (8x8 scaled to 28x28) with torch.nn routed to convlab by patch(); "
    "ReLU and max pooling, the section's exercise, learn in a few epochs on 1437 images"
)


def load_digits():
    rows = np.loadtxt(gzip.open(ASSETS / "digits.csv.gz", "rt"), delimiter=",", dtype=np.float32)
    images = rows[:, :64].reshape(-1, 1, 8, 8) / 16.0
    # Nearest-neighbour 8x8 -> 24x24, padded to LeNet's 28x28.
    images = np.pad(images.repeat(3, axis=2).repeat(3, axis=3), ((0, 0), (0, 0), (2, 2), (2, 2)))
    labels = rows[:, 64].astype(np.int64)
    test = np.arange(len(rows)) % 5 == 0
    return (torch.from_numpy(images[~test]), torch.from_numpy(labels[~test])), (
        torch.from_numpy(images[test]),
        torch.from_numpy(labels[test]),
    )


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


(train_x, train_y), (test_x, test_y) = load_digits()
torch.manual_seed(0)
net = lenet()
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
ct.reset_stats()
with ct.patch():
    t0 = time.perf_counter()
    for epoch in range(5):
        perm = torch.randperm(len(train_x))
        for i in range(0, len(perm), 32):
            batch = perm[i : i + 32]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(train_x[batch]), train_y[batch])
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (net(test_x).argmax(1) == test_y).float().mean().item()
        print(f"epoch {epoch + 1}, loss {loss.item():.3f}, test acc {acc:.3f}")
    print(f"{time.perf_counter() - t0:.1f} s")
routed = ct.stats()
print("calls convlab ran:", {op: s["routed"] for op, s in routed.items()})
