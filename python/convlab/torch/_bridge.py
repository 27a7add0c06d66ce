"""The torch bridge: torch.nn.functional's ops run by convlab on CPU float32
tensors, with autograd, falling back to torch for everything else.

A call is *routed* to convlab when every tensor argument is a plain CPU
float32 strided tensor (or a Parameter) and nothing is watching torch's
dispatch (TorchScript tracing, torch.compile, functorch transforms,
``__torch_function__`` or dispatch modes, forward-mode AD). Anything else
*falls back* to torch's own function, and so does a call convlab *refuses*
(it raises on arguments it does not support or that are invalid: torch
then runs or raises its own error, so error types and messages are
torch's). Gradients come from convlab's backward passes; a double backward
(``create_graph=True``) is computed by torch on the saved inputs.

Tensors cross as NumPy views (``Tensor.numpy()``); convlab copies each input
once while holding the GIL and hands its result buffers to torch without a
copy (``torch.from_numpy``).
"""

import torch
import torch.autograd.forward_ad as _forward_ad
import torch.nn.functional as _F

from .. import _native

#: torch.nn.functional's own functions, taken before any patch.
ORIGINAL = {
    name: getattr(_F, name)
    for name in (
        "conv2d",
        "conv_transpose2d",
        "max_pool2d",
        "max_pool2d_with_indices",
        "avg_pool2d",
        "adaptive_avg_pool2d",
        "adaptive_max_pool2d",
        "adaptive_max_pool2d_with_indices",
        "unfold",
        "fold",
        "pad",
    )
}

_PLAIN = (torch.Tensor, torch.nn.Parameter)
_F32 = torch.float32
_STRIDED = torch.strided

#: Per op: [routed to convlab, fell back (not eligible), refused by convlab].
_counts = {}
#: Per op: convlab's message for the last call it refused.
_last_refusal = {}


def stats():
    """How many calls each op routed to convlab, left to torch because they
    were not eligible, and left to torch after convlab refused them:
    ``{"conv2d": {"routed": 12, "fell_back": 0, "refused": 1}, ...}``, with
    convlab's message for the last refusal under ``"last_refusal"``."""
    out = {}
    for op, c in sorted(_counts.items()):
        out[op] = {"routed": c[0], "fell_back": c[1], "refused": c[2]}
        if op in _last_refusal:
            out[op]["last_refusal"] = _last_refusal[op]
    return out


def reset_stats():
    """Zero the counts :func:`stats` reports."""
    _counts.clear()
    _last_refusal.clear()


def _count(op, which):
    c = _counts.get(op)
    if c is None:
        c = _counts[op] = [0, 0, 0]
    c[which] += 1


_synced_threads = [0]


def _follow_torch_threads():
    """One thread policy: convlab's pool takes torch's thread count."""
    n = torch.get_num_threads()
    if n != _synced_threads[0]:
        _native.set_num_threads(n)
        _synced_threads[0] = n


def _watched():
    """Whether something records or transforms torch calls, so only torch's
    own functions may run."""
    return (
        torch._C._is_torch_function_mode_enabled()
        or torch._C._len_torch_dispatch_stack() > 0
        or torch._C._functorch.peek_interpreter_stack() is not None
        or torch._C._get_tracing_state() is not None
        or torch.compiler.is_compiling()
        or _forward_ad._current_level >= 0
    )


def _eligible(tensors):
    """Whether convlab can take these tensors (``None`` entries allowed)."""
    for t in tensors:
        if t is None:
            continue
        if (
            t.__class__ not in _PLAIN
            or t.dtype is not _F32
            or not t.is_cpu
            or t.layout is not _STRIDED
        ):
            return False
    first = tensors[0]
    if first is None:
        return False
    # Keep torch's channels-last output layout: torch handles those.
    if first.dim() == 4 and not first.is_contiguous() and first.is_contiguous(memory_format=torch.channels_last):
        return False
    return not _watched()


def _needs_grad(tensors):
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


def as_numpy(t):
    """A NumPy view of a CPU tensor (no copy)."""
    if t is None:
        return None
    return (t.detach() if t.requires_grad else t).numpy()


def as_tensor(a):
    """A NumPy array from convlab as a tensor sharing its buffer."""
    return None if a is None else torch.from_numpy(a)


def fall_back(op, fallback):
    """Count a call convlab does not take, and run torch's ``fallback()``."""
    _count(op, 1)
    return fallback()


def route(op, tensors, convlab_call, fallback):
    """Run ``convlab_call()`` when ``tensors`` are eligible, else (or when
    convlab raises) ``fallback()``, torch's own function on the same
    arguments."""
    if not _eligible(tensors):
        return fall_back(op, fallback)
    _follow_torch_threads()
    try:
        out = convlab_call(_needs_grad(tensors))
    except Exception as e:
        _count(op, 2)
        _last_refusal[op] = f"{type(e).__name__}: {e}"
        return fallback()
    _count(op, 0)
    return out


def torch_vjp(fn, inputs, needs, grads_out):
    """Gradients of ``fn(*inputs)`` by torch itself, with ``create_graph``:
    the double-backward path. ``needs[i]`` says which inputs want one."""
    with torch.enable_grad():
        wanted = [x for x, n in zip(inputs, needs) if n and x is not None]
        out = fn(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        got = torch.autograd.grad(
            outs[0], wanted, grads_out, create_graph=True, allow_unused=True
        )
    it = iter(got)
    return tuple(next(it) if (n and x is not None) else None for x, n in zip(inputs, needs))
