"""convlab as a CPU backend for PyTorch.

- ``convlab.torch.conv2d(x, w, b, stride=...)`` and the other ops of
  :mod:`convlab.torch.functional`: torch.nn.functional's signatures, run by
  convlab on CPU float32 tensors with autograd, torch's own function for
  anything else;
- :mod:`convlab.torch.nn`: ``Conv2d``, ``MaxPool2d``, ... as drop-in
  subclasses of torch's layers (same ``state_dict``);
- :func:`patch` / :func:`unpatch`: route ``torch.nn.functional.conv2d`` &
  co. to convlab, which covers ``torch.nn`` layers and models built from
  them (torchvision's included), since they call ``F.conv2d`` and friends.

    >>> import torch, torchvision, convlab.torch
    >>> model = torchvision.models.resnet18(num_classes=10)
    >>> with convlab.torch.patch():
    ...     loss = model(torch.randn(2, 3, 64, 64)).sum()
    ...     loss.backward()
"""

import torch.nn.functional as _F

from . import functional, nn
from ._bridge import ORIGINAL, reset_stats, stats
from .functional import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    adaptive_max_pool2d_with_indices,
    avg_pool2d,
    conv2d,
    conv_transpose2d,
    corr2d,
    fold,
    max_pool2d,
    max_pool2d_with_indices,
    pad,
    unfold,
)

#: The torch.nn.functional names :func:`patch` replaces, and by what.
PATCHED = {
    "conv2d": conv2d,
    "conv_transpose2d": conv_transpose2d,
    "max_pool2d": max_pool2d,
    "max_pool2d_with_indices": max_pool2d_with_indices,
    "avg_pool2d": avg_pool2d,
    "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "adaptive_max_pool2d": adaptive_max_pool2d,
    "adaptive_max_pool2d_with_indices": adaptive_max_pool2d_with_indices,
    "unfold": unfold,
    "fold": fold,
    "pad": pad,
}


class _Patch:
    """The handle :func:`patch` returns: also a context manager that
    restores what was there before when the block ends."""

    def __init__(self, previous):
        self._previous = previous

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for name, fn in self._previous.items():
            setattr(_F, name, fn)
        return False


def patch():
    """Route torch.nn.functional's convolution and pooling ops (the names in
    :data:`PATCHED`) to convlab for CPU float32 tensors; every other call
    still runs torch's own function. Returns a handle that is also a
    context manager (``with convlab.torch.patch(): ...``).

    The switch is process-wide (it replaces attributes of
    ``torch.nn.functional``), like any monkey patch; under it convlab's
    thread pool takes torch's thread count (``torch.set_num_threads``).
    """
    previous = {name: getattr(_F, name) for name in PATCHED}
    for name, fn in PATCHED.items():
        setattr(_F, name, fn)
    return _Patch(previous)


def unpatch():
    """Put torch.nn.functional's own functions back."""
    for name, fn in ORIGINAL.items():
        setattr(_F, name, fn)


def is_patched():
    """Whether torch.nn.functional currently routes to convlab."""
    return _F.conv2d is conv2d


__all__ = [
    "PATCHED",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_with_indices",
    "avg_pool2d",
    "conv2d",
    "conv_transpose2d",
    "corr2d",
    "fold",
    "functional",
    "is_patched",
    "max_pool2d",
    "max_pool2d_with_indices",
    "nn",
    "pad",
    "patch",
    "reset_stats",
    "stats",
    "unfold",
    "unpatch",
]
