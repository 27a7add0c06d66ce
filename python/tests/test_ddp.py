"""convlab inside torch.distributed: a 2-process gloo DDP run of LeNet
with patch() gives the same weights as without it (ddp_lenet.py)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_lenet.py")


def test_ddp_with_patch_matches_plain_ddp(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], check=True, timeout=300, env=env)
    plain = torch.load(tmp_path / "plain.pt")
    patched = torch.load(tmp_path / "patched.pt")
    assert plain.keys() == patched.keys()
    flat = lambda sd: torch.cat([v.flatten() for v in sd.values()])  # noqa: E731
    a, b = flat(patched), flat(plain)
    err = ((a - b).abs().max() / b.abs().max()).item()
    print(f"DDP LeNet, 2 gloo processes, 5 steps: patched vs plain weights, max relative {err:.2e}")
    assert err <= 1e-5
    for k in plain:  # and each tensor agrees on its own
        err = ((patched[k] - plain[k]).abs().max() / plain[k].abs().max()).item()
        assert err <= 1e-5, k
