"""convlab.functional on NumPy arrays against torch.nn.functional: random
cases of every op, forward and every gradient (the backward functions
against torch.autograd on the same inputs)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convlab
import convlab.functional as cf
from conftest import assert_close


def t(a, grad=True):
    return torch.tensor(np.asarray(a), dtype=torch.float32, requires_grad=grad)


def torch_grads(out, inputs, g):
    gs = torch.autograd.grad(out, [i for i in inputs if i is not None], torch.from_numpy(g))
    return [x.numpy() for x in gs]


CONV_CASES = [
    # (n, c_in, h, w, c_out, k, stride, padding, dilation, groups)
    (2, 3, 9, 11, 4, (3, 3), 1, 1, 1, 1),
    (1, 4, 12, 12, 6, (3, 2), 2, (1, 0), 1, 2),
    (2, 6, 10, 9, 6, (3, 3), 1, "same", 2, 3),
    (1, 2, 7, 7, 4, (1, 1), (2, 1), 0, 1, 1),
    (3, 16, 14, 14, 32, (3, 3), 1, 1, 1, 1),
    (1, 1, 20, 20, 1, (5, 5), 1, "valid", 1, 1),
    (2, 8, 9, 9, 8, (3, 3), 1, 1, 1, 8),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_forward_and_backward(case, bias, rng):
    n, ci, h, w, co, k, s, p, d, g = case
    x = rng.standard_normal((n, ci, h, w)).astype(np.float32)
    wt = rng.standard_normal((co, ci // g, *k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32) if bias else None
    y = cf.conv2d(x, wt, b, s, p, d, g)
    tx, tw, tb = t(x), t(wt), (t(b) if bias else None)
    ref = F.conv2d(tx, tw, tb, s, p, d, g)
    assert_close(y, ref.detach())
    go = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, gb = cf.conv2d_backward(go, x, wt, s, p, d, g, output_mask=(True, True, bias))
    refs = torch_grads(ref, (tx, tw, tb), go)
    assert_close(gx, refs[0])
    assert_close(gw, refs[1])
    if bias:
        assert_close(gb, refs[2])
    else:
        assert gb is None


def test_conv2d_backward_output_mask(rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    go = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    full = cf.conv2d_backward(go, x, w)
    only_w = cf.conv2d_backward(go, x, w, output_mask=(False, True, False))
    only_x = cf.conv2d_backward(go, x, w, output_mask=(True, False, False))
    assert only_w[0] is None and only_w[2] is None
    np.testing.assert_array_equal(only_w[1], full[1])
    np.testing.assert_array_equal(only_x[0], full[0])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes(mode, rng):
    x = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = cf.conv2d(x, w, None, 1, 1, padding_mode=mode)
    layer = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        assert_close(y, layer(torch.from_numpy(x)))


TRANSPOSE_CASES = [
    # (n, c_in, h, w, c_out, k, stride, padding, output_padding, groups, dilation)
    (2, 4, 5, 6, 3, 3, 2, 1, 1, 1, 1),
    (1, 4, 4, 4, 4, (2, 3), 1, 0, 0, 2, 1),
    (1, 2, 5, 5, 2, 3, (2, 3), (1, 0), (1, 2), 1, (1, 2)),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_forward_and_backward(case, rng):
    n, ci, h, w, co, k, s, p, op, g, d = case
    k = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, ci, h, w)).astype(np.float32)
    wt = rng.standard_normal((ci, co // g, *k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    y = cf.conv_transpose2d(x, wt, b, s, p, op, g, d)
    tx, tw, tb = t(x), t(wt), t(b)
    ref = F.conv_transpose2d(tx, tw, tb, s, p, op, g, d)
    assert_close(y, ref.detach())
    go = rng.standard_normal(y.shape).astype(np.float32)
    grads = cf.conv_transpose2d_backward(go, x, wt, s, p, op, g, d)
    for ours, theirs in zip(grads, torch_grads(ref, (tx, tw, tb), go)):
        assert_close(ours, theirs)


POOL_CASES = [
    # (shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 9, 10), 3, 2, 1, 1, False),
    ((1, 2, 8, 8), 2, None, 0, 1, False),
    ((2, 4, 11, 7), (3, 2), (2, 1), (1, 0), (2, 1), True),
    ((3, 7, 7), 3, 1, 1, 1, True),
    ((1, 64, 32, 32), 3, 2, 1, 1, False),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_with_indices_and_backward(case, rng):
    shape, k, s, p, d, ceil = case
    x = rng.standard_normal(shape).astype(np.float32)
    y = cf.max_pool2d(x, k, s, p, d, ceil)
    y2, idx = cf.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    tx = t(x)
    ref, ref_idx = F.max_pool2d(tx, k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(y, ref.detach().numpy())
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(idx, ref_idx.numpy())
    assert idx.dtype == np.int64
    go = rng.standard_normal(y.shape).astype(np.float32)
    gx = cf.max_pool2d_backward(go, x.shape, idx)
    assert_close(gx, torch_grads(ref, (tx,), go)[0])


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 3])
def test_avg_pool2d_forward_and_backward(case, count_include_pad, divisor_override, rng):
    shape, k, s, p, _, ceil = case
    x = rng.standard_normal(shape).astype(np.float32)
    args = (k, s, p, ceil, count_include_pad, divisor_override)
    y = cf.avg_pool2d(x, *args)
    tx = t(x)
    ref = F.avg_pool2d(tx, *args)
    assert_close(y, ref.detach())
    go = rng.standard_normal(y.shape).astype(np.float32)
    gx = cf.avg_pool2d_backward(go, x.shape, *args)
    assert_close(gx, torch_grads(ref, (tx,), go)[0])


@pytest.mark.parametrize("shape,size", [((2, 3, 9, 10), 4), ((1, 2, 7, 7), (3, None)), ((3, 8, 5), (5, 2)), ((1, 512, 7, 7), 1)])
def test_adaptive_pools_forward_and_backward(shape, size, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    tx = t(x)
    y = cf.adaptive_avg_pool2d(x, size)
    ref = F.adaptive_avg_pool2d(tx, size)
    assert_close(y, ref.detach())
    go = rng.standard_normal(y.shape).astype(np.float32)
    assert_close(cf.adaptive_avg_pool2d_backward(go, x.shape), torch_grads(ref, (tx,), go)[0])
    ym, idx = cf.adaptive_max_pool2d(x, size, return_indices=True)
    refm, ref_idx = F.adaptive_max_pool2d(tx, size, return_indices=True)
    np.testing.assert_array_equal(ym, refm.detach().numpy())
    np.testing.assert_array_equal(idx, ref_idx.numpy())
    np.testing.assert_array_equal(cf.adaptive_max_pool2d(x, size), ym)
    gx = cf.adaptive_max_pool2d_backward(go, x.shape, idx)
    assert_close(gx, torch_grads(refm, (tx,), go)[0])


@pytest.mark.parametrize(
    "shape,k,d,p,s",
    [((2, 3, 8, 9), 3, 1, 1, 1), ((1, 2, 10, 10), (2, 3), (2, 1), (1, 0), (2, 3)), ((3, 6, 6), 2, 1, 0, 2)],
)
def test_unfold_fold_forward_and_backward(shape, k, d, p, s, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    tx = t(x)
    cols = cf.unfold(x, k, d, p, s)
    ref = F.unfold(tx, k, d, p, s)
    np.testing.assert_array_equal(cols, ref.detach().numpy())
    go = rng.standard_normal(cols.shape).astype(np.float32)
    assert_close(cf.unfold_backward(go, x.shape, k, d, p, s), torch_grads(ref, (tx,), go)[0])
    tc = t(cols)
    img = cf.fold(cols, shape[-2:], k, d, p, s)
    ref_img = F.fold(tc, shape[-2:], k, d, p, s)
    assert_close(img, ref_img.detach())
    gi = rng.standard_normal(img.shape).astype(np.float32)
    assert_close(cf.fold_backward(gi, k, d, p, s), torch_grads(ref_img, (tc,), gi)[0])


@pytest.mark.parametrize(
    "shape,pad,mode",
    [
        ((2, 3, 5, 6), (1, 2, 3, 0), "constant"),
        ((2, 3, 5, 6), (1, 2, 3, 4), "reflect"),
        ((3, 5, 6), (2, 2, 1, 1), "replicate"),
        ((2, 3, 5, 6), (4, 1, 2, 5), "circular"),
        ((3, 7), (2, 1), "reflect"),
        ((2, 3, 7), (0, 3), "constant"),
    ],
)
def test_pad_forward_and_backward(shape, pad, mode, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    tx = t(x)
    y = cf.pad(x, pad, mode)
    ref = F.pad(tx, pad, mode)
    np.testing.assert_array_equal(y, ref.detach().numpy())
    go = rng.standard_normal(y.shape).astype(np.float32)
    assert_close(cf.pad_backward(go, x.shape, pad, mode), torch_grads(ref, (tx,), go)[0])


def test_corr2d_and_convolve2d_and_backward(rng):
    x = rng.standard_normal((7, 9)).astype(np.float32)
    k = rng.standard_normal((3, 2)).astype(np.float32)
    tx, tk = t(x), t(k)
    ref = F.conv2d(tx[None, None], tk[None, None])[0, 0]
    assert_close(cf.corr2d(x, k), ref.detach())
    assert_close(cf.convolve2d(x, k), cf.corr2d(x, k[::-1, ::-1]))
    go = rng.standard_normal(ref.shape).astype(np.float32)
    gx, gk = cf.corr2d_backward(go, x, k)
    rx, rk = torch_grads(ref, (tx, tk), go)
    assert_close(gx, rx)
    assert_close(gk, rk)


def test_book_first_cell():
    X = np.arange(9.0).reshape(3, 3)
    K = [[0.0, 1.0], [2.0, 3.0]]
    y = convlab.corr2d(X, K)
    assert y.dtype == np.float32
    assert convlab.format_tensor(y) == "tensor([[19., 25.],\n        [37., 43.]])"


def test_any_array_like_is_accepted(rng):
    x = rng.standard_normal((1, 1, 5, 5))
    w = rng.standard_normal((1, 1, 2, 2))
    ref = cf.conv2d(x.astype(np.float32), w.astype(np.float32))
    np.testing.assert_array_equal(cf.conv2d(x, w), ref)  # float64 in
    np.testing.assert_array_equal(cf.conv2d(x.tolist(), w.tolist()), ref)  # nested lists
    np.testing.assert_array_equal(cf.conv2d(torch.from_numpy(x).float(), w), ref)  # torch tensor
    strided = np.asfortranarray(x.astype(np.float32))
    np.testing.assert_array_equal(cf.conv2d(strided, w), ref)  # non-contiguous float32
    big = np.zeros((1, 1, 10, 10), np.float32)
    big[..., ::2, ::2] = x
    np.testing.assert_array_equal(cf.conv2d(big[..., ::2, ::2], w), ref)  # a strided view


def test_outputs_own_convlabs_buffer_without_a_copy():
    y = cf.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32))
    # NumPy does not own the data: the Rust buffer does, through its base.
    assert not y.flags.owndata
    assert type(y.base).__name__ == "PySliceContainer"
    assert y.flags.c_contiguous and y.flags.writeable
    assert y.dtype == np.float32


def test_inputs_are_copied_so_later_writes_do_not_leak(rng):
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    y = cf.max_pool2d(x, 2)
    before = y.copy()
    x[:] = 100.0
    np.testing.assert_array_equal(y, before)
