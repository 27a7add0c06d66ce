"""convlab.torch: autograd wrappers against torch, the fallback rules,
nn.Module drop-ins, patch() / unpatch(), the thread policy."""

import pytest
import torch
import torch.nn.functional as F

import convlab
import convlab.torch as ct
from conftest import assert_close


def leaf(*shape, gen):
    return torch.randn(*shape, generator=gen).requires_grad_()


def compare(fn_ours, fn_ref, inputs, gen):
    """Outputs and gradients (of sum(out * g)) of both functions agree."""
    ours, ref = fn_ours(*inputs), fn_ref(*inputs)
    ours_t = ours if isinstance(ours, tuple) else (ours,)
    ref_t = ref if isinstance(ref, tuple) else (ref,)
    for a, b in zip(ours_t, ref_t):
        if a.is_floating_point():
            assert_close(a.detach(), b.detach())
        else:
            assert torch.equal(a, b)
    g = torch.randn(ref_t[0].shape, generator=gen)
    wanted = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    ga = torch.autograd.grad(ours_t[0], wanted, g)
    gb = torch.autograd.grad(ref_t[0], wanted, g)
    for a, b in zip(ga, gb):
        assert_close(a, b)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def fresh_stats():
    ct.reset_stats()
    yield
    ct.unpatch()


def test_every_op_with_autograd(gen):
    x = leaf(2, 4, 11, 10, gen=gen)
    w = leaf(6, 2, 3, 3, gen=gen)
    b = leaf(6, gen=gen)
    compare(ct.conv2d, F.conv2d, (x, w, b, 2, 1, 1, 2), gen)
    w4 = leaf(6, 4, 3, 3, gen=gen)
    compare(
        lambda x, w, b: ct.conv2d(x, w, b, padding=1, padding_mode="reflect"),
        lambda x, w, b: F.conv2d(F.pad(x, (1, 1, 1, 1), "reflect"), w, b),
        (x, w4, b),
        gen,
    )
    wt = leaf(4, 3, 3, 3, gen=gen)
    compare(ct.conv_transpose2d, F.conv_transpose2d, (x, wt, None, 2, 1, 1), gen)
    compare(lambda x: ct.max_pool2d(x, 3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1), (x,), gen)
    compare(lambda x: ct.max_pool2d(x, 2, return_indices=True), lambda x: F.max_pool2d(x, 2, return_indices=True), (x,), gen)
    compare(lambda x: ct.avg_pool2d(x, 3, 2, 1, True, False), lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), (x,), gen)
    compare(lambda x: ct.adaptive_avg_pool2d(x, (3, None)), lambda x: F.adaptive_avg_pool2d(x, (3, None)), (x,), gen)
    compare(lambda x: ct.adaptive_max_pool2d(x, 4, True), lambda x: F.adaptive_max_pool2d(x, 4, True), (x,), gen)
    compare(lambda x: ct.unfold(x, 3, 1, 1, 2), lambda x: F.unfold(x, 3, 1, 1, 2), (x,), gen)
    cols = leaf(2, 36, 25, gen=gen)
    compare(lambda c: ct.fold(c, (9, 9), 3, 1, 1, 2), lambda c: F.fold(c, (9, 9), 3, 1, 1, 2), (cols,), gen)
    compare(lambda x: ct.pad(x, (1, 2, 0, 3), "replicate"), lambda x: F.pad(x, (1, 2, 0, 3), "replicate"), (x,), gen)
    compare(lambda x: ct.pad(x, (2, 1)), lambda x: F.pad(x, (2, 1)), (x,), gen)
    m = leaf(6, 7, gen=gen)
    k = leaf(2, 3, gen=gen)
    compare(ct.corr2d, lambda m, k: F.conv2d(m[None, None], k[None, None])[0, 0], (m, k), gen)
    stats = ct.stats()
    assert all(s["fell_back"] == 0 and s["refused"] == 0 for s in stats.values()), stats
    assert len(stats) == 10


def test_only_the_wanted_gradients_are_computed(gen):
    x = torch.randn(1, 3, 8, 8, generator=gen)  # an image: no gradient
    w = leaf(4, 3, 3, 3, gen=gen)
    y = ct.conv2d(x, w, padding=1)
    (gw,) = torch.autograd.grad(y.sum(), w)
    assert_close(gw, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), w)[0])
    assert x.grad is None


def test_no_grad_and_inference_mode_skip_autograd(gen):
    x = leaf(1, 2, 6, 6, gen=gen)
    w = leaf(3, 2, 3, 3, gen=gen)
    with torch.no_grad():
        y = ct.conv2d(x, w)
    assert y.grad_fn is None and not y.requires_grad
    with torch.inference_mode():
        z = ct.max_pool2d(x, 2)
    assert_close(z, F.max_pool2d(x, 2).detach())
    assert ct.stats()["conv2d"]["routed"] == 1


def test_double_backward_is_torchs(gen):
    x = leaf(1, 2, 7, 7, gen=gen)
    w = leaf(3, 2, 3, 3, gen=gen)

    def second(conv):
        y = conv(x, w, padding=1)
        (gx,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), w)[0]

    assert_close(second(ct.conv2d), second(F.conv2d))


@pytest.mark.parametrize(
    "make",
    [
        lambda g: (torch.randn(1, 2, 6, 6, dtype=torch.float64), torch.randn(3, 2, 3, 3, dtype=torch.float64)),
        lambda g: (torch.randn(1, 2, 6, 6).to(memory_format=torch.channels_last), torch.randn(3, 2, 3, 3)),
        lambda g: (torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3, dtype=torch.float64)),
        lambda g: (torch.randn(1, 2, 6, 6).to_sparse(), torch.randn(3, 2, 3, 3)),
    ],
    ids=["float64", "channels_last", "mixed_dtypes", "sparse"],
)
def test_other_tensors_fall_back_to_torch(make, gen):
    x, w = make(gen)
    try:
        ref = F.conv2d(x, w)
    except Exception as e:  # torch refuses: so must the bridge, with torch's error
        with pytest.raises(type(e)):
            ct.conv2d(x, w)
    else:
        y = ct.conv2d(x, w)
        assert y.dtype == ref.dtype and y.stride() == ref.stride()
        assert torch.equal(y, ref)
    assert ct.stats()["conv2d"] == {"routed": 0, "fell_back": 1, "refused": 0}


def test_refused_calls_run_torchs_function_and_raise_torchs_errors():
    x = torch.randn(1, 1, 4, 4)
    # A negative divisor: torch divides by it, convlab refuses.
    ref = F.avg_pool2d(x, 2, divisor_override=-2)
    assert torch.equal(ct.avg_pool2d(x, 2, divisor_override=-2), ref)
    assert ct.stats()["avg_pool2d"]["refused"] == 1
    assert "divisor_override" in ct.stats()["avg_pool2d"]["last_refusal"]
    with pytest.raises(RuntimeError, match="non-positive stride"):
        ct.conv2d(x, torch.randn(1, 1, 2, 2), stride=-1)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_tracing_and_vmap_see_torchs_ops(gen):
    x = torch.randn(2, 3, 8, 8, generator=gen)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.MaxPool2d(2))
    with ct.patch():
        traced = torch.jit.trace(model, x, check_trace=False)
        vm = torch.func.vmap(lambda im: F.conv2d(im, model[0].weight))(x[:, None])
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph or "aten::conv2d" in graph
    assert torch.equal(traced(x), model(x))
    assert_close(vm[:, 0].detach(), F.conv2d(x, model[0].weight).detach())
    assert ct.stats()["conv2d"]["routed"] == 0


def test_patch_routes_functional_and_modules_and_restores():
    x = torch.randn(1, 3, 10, 10)
    layer = torch.nn.Conv2d(3, 4, 3)
    assert not ct.is_patched()
    with ct.patch():
        assert ct.is_patched() and F.conv2d is ct.conv2d
        layer(x)
        F.max_pool2d(x, 2)
        torch.nn.ReflectionPad2d(1)(x)
    assert not ct.is_patched() and F.conv2d is ct.ORIGINAL["conv2d"]
    s = ct.stats()
    assert s["conv2d"]["routed"] == 1 and s["max_pool2d"]["routed"] == 1 and s["pad"]["routed"] == 1
    handle = ct.patch()
    assert ct.is_patched()
    ct.unpatch()
    assert not ct.is_patched()
    del handle


def test_nested_patch_restores_the_outer_state():
    with ct.patch():
        with ct.patch():
            pass
        assert ct.is_patched()
    assert not ct.is_patched()


def test_modules_are_drop_ins_with_torchs_state_dict(gen):
    torch.manual_seed(0)
    pairs = [
        (ct.nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3), torch.nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3)),
        (ct.nn.Conv2d(3, 4, 3, padding="same", padding_mode="circular"), torch.nn.Conv2d(3, 4, 3, padding="same", padding_mode="circular")),
        (ct.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)),
        (ct.nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
        (ct.nn.AvgPool2d(2, ceil_mode=True), torch.nn.AvgPool2d(2, ceil_mode=True)),
        (ct.nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
        (ct.nn.AdaptiveMaxPool2d(2), torch.nn.AdaptiveMaxPool2d(2)),
        (ct.nn.Unfold(2, stride=2), torch.nn.Unfold(2, stride=2)),
    ]
    x = torch.randn(2, 3, 9, 9, generator=gen)
    for ours, ref in pairs:
        assert isinstance(ours, type(ref))
        ref.load_state_dict(ours.state_dict())
        assert ours.state_dict().keys() == ref.state_dict().keys()
        assert_close(ours(x).detach(), ref(x).detach())
    fold = ct.nn.Fold((4, 4), 2, stride=2)
    cols = torch.randn(1, 12, 4, generator=gen)
    assert_close(fold(cols), torch.nn.Fold((4, 4), 2, stride=2)(cols))
    up = ct.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    ref = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    ref.load_state_dict(up.state_dict())
    assert_close(up(x, output_size=(18, 18)).detach(), ref(x, output_size=(18, 18)).detach())
    assert ct.stats()["conv2d"]["routed"] == 2


def test_convlab_follows_torchs_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ct.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 2, 2))
        assert convlab.get_num_threads() == 1
        convlab.set_num_threads(2)
        assert torch.get_num_threads() == 2 and convlab.get_num_threads() == 2
    finally:
        convlab.set_num_threads(before)
