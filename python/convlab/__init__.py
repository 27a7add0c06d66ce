"""convlab: the convolution and pooling layers of CNNs with PyTorch's semantics.

- ``convlab.functional``: torch.nn.functional's ops (conv2d, max_pool2d, ...)
  on NumPy arrays, and their backward passes;
- ``convlab.torch``: the same ops on torch tensors with autograd, nn.Module
  drop-ins, and ``patch()`` to route torch.nn.functional to convlab;
- the chapter's tools: :func:`learn_kernel`, :func:`receptive_field`,
  :mod:`convlab.filters`, :func:`tour`.

The book's first cell::

    >>> import numpy as np, convlab
    >>> X = np.arange(9.0).reshape(3, 3)
    >>> K = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> print(convlab.format_tensor(convlab.corr2d(X, K)))
    tensor([[19., 25.],
            [37., 43.]])
"""

import sys as _sys

from . import _native, filters, functional
from ._tools import LearnResult, learn_kernel, max_stable_lr, receptive_field, tour
from .functional import convolve2d, corr2d

__version__ = _native.__version__
format_tensor = _native.format_tensor
get_num_threads = _native.get_num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for convlab's ops, and for torch's when torch is
    loaded: one policy for both pools, so they do not oversubscribe the cores.
    """
    _native.set_num_threads(n)
    torch = _sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)


__all__ = [
    "LearnResult",
    "convolve2d",
    "corr2d",
    "filters",
    "format_tensor",
    "functional",
    "get_num_threads",
    "learn_kernel",
    "max_stable_lr",
    "receptive_field",
    "set_num_threads",
    "tour",
]
