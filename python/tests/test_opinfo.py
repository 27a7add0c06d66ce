"""PyTorch's own OpInfo samples for the patched ops, through the patched
torch.nn.functional (float32, CPU).

Each sample input runs with patch() off and on; the outputs and the
gradients of every differentiable input must agree to the fixtures'
tolerance. A sample is *routed* (convlab ran it), *refused* (convlab raised
and torch's function ran) or *fell back* (not for convlab: negative pads,
a constant value, ...). Each error input must raise torch's error type and
message through the patched function. The counts are printed at the end
of the pytest run.
"""

import pytest
import torch
import torch.nn.functional as F

import convlab.torch as ct
from conftest import OPINFO_SUMMARY, rel_err

op_db = pytest.importorskip("torch.testing._internal.common_methods_invocations").op_db

#: OpInfo name -> the torch.nn.functional attribute patch() replaces.
OPS = {
    "nn.functional.conv2d": "conv2d",
    "nn.functional.conv_transpose2d": "conv_transpose2d",
    "nn.functional.max_pool2d": "max_pool2d",
    "nn.functional.avg_pool2d": "avg_pool2d",
    "nn.functional.adaptive_avg_pool2d": "adaptive_avg_pool2d",
    "nn.functional.adaptive_max_pool2d": "adaptive_max_pool2d",
    "nn.functional.unfold": "unfold",
    "nn.functional.fold": "fold",
    "nn.functional.pad": "pad",
}

OPINFOS = [op for op in op_db if op.name in OPS]
#: Variants none of whose samples convlab takes: negative pads crop.
NOT_FOR_CONVLAB = {"nn.functional.pad.replicate_negative"}
TOL = 1e-4


def _id(op):
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def _outputs(out, process):
    out = process(out)
    return out if isinstance(out, (tuple, list)) else (out,)


def _grads(outs, inputs, seed):
    """Gradients of sum(out * g) over the float outputs, g seeded."""
    gen = torch.Generator().manual_seed(seed)
    floats = [o for o in outs if o.is_floating_point() and o.requires_grad]
    if not floats or not inputs:
        return []
    gs = [torch.randn(o.shape, generator=gen) for o in floats]
    return torch.autograd.grad(floats, inputs, gs, allow_unused=True)


def _leaves(sample):
    ts = [sample.input, *sample.args, *sample.kwargs.values()]
    return [t for t in ts if isinstance(t, torch.Tensor) and t.requires_grad]


def _outcome(name):
    s = ct.stats().get(name, {})
    if s.get("routed"):
        return "routed"
    if s.get("refused"):
        return "refused"
    return "fell_back"


@pytest.mark.parametrize("opinfo", OPINFOS, ids=_id)
def test_samples_through_patch(opinfo):
    name = OPS[opinfo.name]
    fn = lambda s: getattr(F, name)(s.input, *s.args, **s.kwargs)  # noqa: E731
    counts = OPINFO_SUMMARY.setdefault(_id(opinfo), {})
    failures = []
    samples = list(opinfo.sample_inputs("cpu", torch.float32, requires_grad=True))
    assert samples
    for i, sample in enumerate(samples):
        leaves = _leaves(sample)
        ref = _outputs(fn(sample), sample.output_process_fn_grad)
        ref_grads = _grads(ref, leaves, i)
        ct.reset_stats()
        with ct.patch():
            ours = _outputs(fn(sample), sample.output_process_fn_grad)
            our_grads = _grads(ours, leaves, i)
        outcome = _outcome(name)
        counts[outcome] = counts.get(outcome, 0) + 1
        for a, b in zip(ours, ref):
            if a.is_floating_point():
                err = rel_err(a.detach(), b.detach())
                if err > TOL:
                    failures.append(f"sample {i} ({sample}): output error {err:.3g}")
            elif not torch.equal(a, b):
                failures.append(f"sample {i} ({sample}): indices differ")
        for a, b in zip(our_grads, ref_grads):
            if (a is None) != (b is None):
                failures.append(f"sample {i}: a gradient is missing")
            elif a is not None and rel_err(a, b) > TOL:
                failures.append(f"sample {i}: gradient error {rel_err(a, b):.3g}")
    assert not failures, "\n".join(failures[:10])
    if _id(opinfo) not in NOT_FOR_CONVLAB:
        assert counts.get("routed", 0) > 0, "no sample ran on convlab"


ERROR_OPINFOS = [op for op in OPINFOS if op.error_inputs_func is not None]


@pytest.mark.parametrize("opinfo", ERROR_OPINFOS, ids=_id)
def test_error_inputs_raise_torchs_errors(opinfo):
    name = OPS[opinfo.name]
    counts = OPINFO_SUMMARY.setdefault(_id(opinfo), {})
    for ei in opinfo.error_inputs("cpu"):
        s = ei.sample_input
        ct.reset_stats()
        with ct.patch(), pytest.raises(ei.error_type, match=ei.error_regex):
            getattr(F, name)(s.input, *s.args, **s.kwargs)
        key = "errors_" + _outcome(name)
        counts[key] = counts.get(key, 0) + 1
        assert key != "errors_routed", f"convlab accepted an input torch rejects: {s}"
