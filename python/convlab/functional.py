"""torch.nn.functional's convolution and pooling ops on NumPy arrays.

Names, argument order and defaults are PyTorch's. Inputs may be any
array-like (float32 arrays are read as they are, others converted); each
call copies its inputs once while holding the GIL, computes with the GIL
released (on convlab's thread pool when the work is large enough to split),
and returns float32 arrays that own convlab's result buffer (no copy).

Every op has its backward pass, gradient first:
``conv2d_backward(grad_output, input, weight, ...)`` returns
``(grad_input, grad_weight, grad_bias)``; the pools' backward passes take
the forward input's shape (``input_shape``) and, for max pooling, the
``indices`` the forward returned with ``return_indices=True``.

Errors are exceptions with convlab's one-line messages: ``ValueError`` for
shapes and parameters, ``MemoryError`` over the memory limit
(``CONVLAB_MAX_BYTES``), ``TypeError`` for arguments of the wrong kind.
"""

from . import _native

conv2d = _native.conv2d
conv2d_backward = _native.conv2d_backward
conv_transpose2d = _native.conv_transpose2d
conv_transpose2d_backward = _native.conv_transpose2d_backward
max_pool2d = _native.max_pool2d
max_pool2d_backward = _native.max_pool2d_backward
avg_pool2d = _native.avg_pool2d
avg_pool2d_backward = _native.avg_pool2d_backward
adaptive_avg_pool2d = _native.adaptive_avg_pool2d
adaptive_avg_pool2d_backward = _native.adaptive_avg_pool2d_backward
adaptive_max_pool2d = _native.adaptive_max_pool2d
adaptive_max_pool2d_backward = _native.adaptive_max_pool2d_backward
unfold = _native.unfold
unfold_backward = _native.unfold_backward
fold = _native.fold
fold_backward = _native.fold_backward
pad = _native.pad
pad_backward = _native.pad_backward
corr2d = _native.corr2d
corr2d_backward = _native.corr2d_backward
convolve2d = _native.convolve2d

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "convolve2d",
    "corr2d",
    "corr2d_backward",
    "fold",
    "fold_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "pad",
    "pad_backward",
    "unfold",
    "unfold_backward",
]
