"""torch.nn.functional's convolution and pooling ops, run by convlab on CPU
float32 tensors with autograd; every other call is torch's own (see
:mod:`convlab.torch._bridge` for the rules).

Each op is an :class:`OpSpec` (convlab's forward and backward on NumPy
arrays, and torch's function on the same parameters) plus a wrapper with
torch's signature; one autograd Function runs them all.
"""

from typing import Callable, NamedTuple

import torch

from .. import _native
from ._bridge import ORIGINAL, as_numpy, as_tensor, fall_back, route, torch_vjp


class OpSpec(NamedTuple):
    """One op of the bridge.

    - ``forward(params, needs_grad, *arrays) -> (outputs, saved)``: convlab's
      forward on NumPy arrays; ``saved`` are extra arrays the backward needs
      (max pooling's indices);
    - ``backward(params, grad_output, arrays, saved, needs) -> grads``: one
      gradient (or ``None``) per tensor argument, ``needs`` saying which;
    - ``torch_fn(params, *tensors)``: torch's own function, for fallbacks
      and double backward.
    """

    name: str
    forward: Callable
    backward: Callable
    torch_fn: Callable


class _ConvlabOp(torch.autograd.Function):
    """Any :class:`OpSpec` with autograd. Integer outputs (indices) are not
    differentiable."""

    @staticmethod
    def forward(ctx, spec, params, *tensors):
        outs, saved = spec.forward(params, True, *map(as_numpy, tensors))
        outs = tuple(map(as_tensor, outs))
        saved = tuple(map(as_tensor, saved))
        ctx.spec, ctx.params, ctx.n_inputs = spec, params, len(tensors)
        ctx.save_for_backward(*tensors, *saved)
        nondiff = [o for o in outs if not o.is_floating_point()]
        if nondiff:
            ctx.mark_non_differentiable(*nondiff)
        return outs if len(outs) > 1 else outs[0]

    @staticmethod
    def backward(ctx, grad_output, *_):
        saved = ctx.saved_tensors
        tensors, extra = saved[: ctx.n_inputs], saved[ctx.n_inputs :]
        needs = ctx.needs_input_grad[2:]
        spec, params = ctx.spec, ctx.params
        if not torch.is_grad_enabled():
            try:
                grads = spec.backward(
                    params,
                    as_numpy(grad_output),
                    [as_numpy(t) for t in tensors],
                    [as_numpy(s) for s in extra],
                    needs,
                )
                return (None, None, *map(as_tensor, grads))
            except Exception:
                pass
        # create_graph=True (or convlab refused): torch differentiates its own op.
        return (
            None,
            None,
            *torch_vjp(lambda *ts: spec.torch_fn(params, *ts), tensors, needs, grad_output),
        )


def _call(spec, params, tensors):
    def convlab_call(needs_grad):
        if needs_grad:
            return _ConvlabOp.apply(spec, params, *tensors)
        outs, _ = spec.forward(params, False, *map(as_numpy, tensors))
        return as_tensor(outs[0]) if len(outs) == 1 else tuple(map(as_tensor, outs))

    return route(spec.name, tensors, convlab_call, lambda: spec.torch_fn(params, *tensors))


# conv2d ---------------------------------------------------------------------


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _mode_pads(padding, kernel, dilation):
    """``F.pad``'s ``(left, right, top, bottom)`` for a convolution's padding
    (``"same"`` puts the odd one at the bottom/right, as torch does)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        sides = []
        for k, d in zip(reversed(kernel), reversed(_pair(dilation))):
            total = d * (k - 1)
            sides += [total // 2, total - total // 2]
        return tuple(sides)
    ph, pw = _pair(padding)
    return (pw, pw, ph, ph)


def _torch_conv2d(p, x, w, b):
    stride, padding, dilation, groups, mode = p
    if mode == "zeros":
        return ORIGINAL["conv2d"](x, w, b, stride, padding, dilation, groups)
    # torch.nn.Conv2d's way: pad with the mode, then convolve unpadded.
    x = ORIGINAL["pad"](x, _mode_pads(padding, tuple(w.shape[2:]), dilation), mode=mode)
    return ORIGINAL["conv2d"](x, w, b, stride, 0, dilation, groups)


CONV2D = OpSpec(
    "conv2d",
    lambda p, g, x, w, b: ((_native.conv2d(x, w, b, *p[:4], padding_mode=p[4]),), ()),
    lambda p, gy, xs, s, needs: _native.conv2d_backward(
        gy, xs[0], xs[1], *p[:4], padding_mode=p[4], output_mask=tuple(needs)
    ),
    _torch_conv2d,
)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    """``torch.nn.functional.conv2d`` on convlab; ``padding_mode``
    (keyword only) as ``torch.nn.Conv2d``'s."""
    return _call(CONV2D, (stride, padding, dilation, groups, padding_mode), (input, weight, bias))


# conv_transpose2d -----------------------------------------------------------

CONV_TRANSPOSE2D = OpSpec(
    "conv_transpose2d",
    lambda p, g, x, w, b: ((_native.conv_transpose2d(x, w, b, *p),), ()),
    lambda p, gy, xs, s, needs: _native.conv_transpose2d_backward(
        gy, xs[0], xs[1], *p, output_mask=tuple(needs)
    ),
    lambda p, x, w, b: ORIGINAL["conv_transpose2d"](x, w, b, *p),
)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """``torch.nn.functional.conv_transpose2d`` on convlab."""
    return _call(
        CONV_TRANSPOSE2D, (stride, padding, output_padding, groups, dilation), (input, weight, bias)
    )


# max pooling ----------------------------------------------------------------


def _max_pool_forward(p, needs_grad, x):
    kernel_size, stride, padding, dilation, ceil_mode, return_indices = p
    if not (needs_grad or return_indices):
        return (_native.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode),), ()
    y, idx = _native.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, True)
    return ((y, idx) if return_indices else (y,)), (idx,)


MAX_POOL2D = OpSpec(
    "max_pool2d",
    _max_pool_forward,
    lambda p, gy, xs, s, needs: (_native.max_pool2d_backward(gy, xs[0].shape, s[0]),),
    lambda p, x: ORIGINAL["max_pool2d"](x, *p[:5], return_indices=p[5]),
)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool2d`` on convlab (``return_indices``
    gives PyTorch's flat int64 indices)."""
    return _call(
        MAX_POOL2D, (kernel_size, stride, padding, dilation, ceil_mode, return_indices), (input,)
    )


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool2d_with_indices`` on convlab: always
    ``(output, indices)``."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


# average pooling ------------------------------------------------------------

AVG_POOL2D = OpSpec(
    "avg_pool2d",
    lambda p, g, x: ((_native.avg_pool2d(x, *p),), ()),
    lambda p, gy, xs, s, needs: (_native.avg_pool2d_backward(gy, xs[0].shape, *p),),
    lambda p, x: ORIGINAL["avg_pool2d"](x, *p),
)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """``torch.nn.functional.avg_pool2d`` on convlab."""
    return _call(
        AVG_POOL2D,
        (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override),
        (input,),
    )


# adaptive pooling -----------------------------------------------------------

ADAPTIVE_AVG_POOL2D = OpSpec(
    "adaptive_avg_pool2d",
    lambda p, g, x: ((_native.adaptive_avg_pool2d(x, p[0]),), ()),
    lambda p, gy, xs, s, needs: (_native.adaptive_avg_pool2d_backward(gy, xs[0].shape),),
    lambda p, x: ORIGINAL["adaptive_avg_pool2d"](x, p[0]),
)


def adaptive_avg_pool2d(input, output_size):
    """``torch.nn.functional.adaptive_avg_pool2d`` on convlab."""
    return _call(ADAPTIVE_AVG_POOL2D, (output_size,), (input,))


def _adaptive_max_forward(p, needs_grad, x):
    y, idx = _native.adaptive_max_pool2d(x, p[0], True)
    return ((y, idx) if p[1] else (y,)), (idx,)


ADAPTIVE_MAX_POOL2D = OpSpec(
    "adaptive_max_pool2d",
    _adaptive_max_forward,
    lambda p, gy, xs, s, needs: (_native.adaptive_max_pool2d_backward(gy, xs[0].shape, s[0]),),
    lambda p, x: ORIGINAL["adaptive_max_pool2d"](x, p[0], return_indices=p[1]),
)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """``torch.nn.functional.adaptive_max_pool2d`` on convlab."""
    return _call(ADAPTIVE_MAX_POOL2D, (output_size, return_indices), (input,))


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    """``torch.nn.functional.adaptive_max_pool2d_with_indices`` on convlab."""
    return adaptive_max_pool2d(input, output_size, True)


# unfold / fold --------------------------------------------------------------

UNFOLD = OpSpec(
    "unfold",
    lambda p, g, x: ((_native.unfold(x, *p),), ()),
    lambda p, gy, xs, s, needs: (_native.unfold_backward(gy, xs[0].shape, *p),),
    lambda p, x: ORIGINAL["unfold"](x, *p),
)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """``torch.nn.functional.unfold`` on convlab."""
    return _call(UNFOLD, (kernel_size, dilation, padding, stride), (input,))


FOLD = OpSpec(
    "fold",
    lambda p, g, x: ((_native.fold(x, *p),), ()),
    lambda p, gy, xs, s, needs: (_native.fold_backward(gy, *p[1:]),),
    lambda p, x: ORIGINAL["fold"](x, *p),
)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """``torch.nn.functional.fold`` on convlab."""
    return _call(FOLD, (output_size, kernel_size, dilation, padding, stride), (input,))


# pad ------------------------------------------------------------------------

PAD = OpSpec(
    "pad",
    lambda p, g, x: ((_native.pad(x, *p),), ()),
    lambda p, gy, xs, s, needs: (_native.pad_backward(gy, xs[0].shape, p[0], p[1]),),
    lambda p, x: ORIGINAL["pad"](x, *p),
)

# The input ranks torch's F.pad accepts for a pad of 2 or 4 sizes in the
# non-constant modes (1-D padding of 2-D/3-D input, 2-D of 3-D/4-D).
_PAD_RANKS = {2: (2, 3), 4: (3, 4)}


def pad(input, pad, mode="constant", value=None):
    """``torch.nn.functional.pad`` on convlab for pads of the last one or
    two dimensions by non-negative sizes, with zeros (``value`` 0 or
    ``None``), ``"reflect"``, ``"replicate"`` or ``"circular"``; other
    pads are torch's."""
    n = len(pad) if isinstance(pad, (tuple, list, torch.Size)) else 0
    supported = (
        n in _PAD_RANKS
        and isinstance(input, torch.Tensor)
        and all(isinstance(v, int) and v >= 0 for v in pad)
        and (
            (mode == "constant" and not value and input.dim() >= n // 2 + 1)
            or (mode in ("reflect", "replicate", "circular") and input.dim() in _PAD_RANKS[n])
        )
    )
    if not supported:
        return fall_back("pad", lambda: ORIGINAL["pad"](input, pad, mode, value))
    return _call(PAD, (tuple(pad), mode, value), (input,))


# corr2d ---------------------------------------------------------------------


def _torch_corr2d(p, x, k):
    return ORIGINAL["conv2d"](x[None, None], k[None, None])[0, 0]


CORR2D = OpSpec(
    "corr2d",
    lambda p, g, x, k: ((_native.corr2d(x, k),), ()),
    lambda p, gy, xs, s, needs: _native.corr2d_backward(gy, xs[0], xs[1]),
    _torch_corr2d,
)


def corr2d(X, K):
    """The chapter's ``corr2d(X, K)`` on 2-D tensors, with autograd.

    >>> import torch, convlab.torch
    >>> X = torch.arange(9.0).reshape(3, 3)
    >>> convlab.torch.corr2d(X, torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    tensor([[19., 25.],
            [37., 43.]])
    """
    return _call(CORR2D, (), (X, K))


__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_with_indices",
    "avg_pool2d",
    "conv2d",
    "conv_transpose2d",
    "corr2d",
    "fold",
    "max_pool2d",
    "max_pool2d_with_indices",
    "pad",
    "unfold",
]
