"""Errors cross into Python as the exceptions a user expects, with the
library's one-line messages; Ctrl-C stops a loop of ops."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import convlab
import convlab.functional as cf

X = np.ones((1, 8, 8, 8), np.float32)


@pytest.mark.parametrize(
    "call,exc,message",
    [
        (
            lambda: cf.conv2d(X, np.ones((4, 4, 3, 3))),
            ValueError,
            "conv2d: input has 8 channels but weight [4, 4, 3, 3] with groups=1 expects 4",
        ),
        (lambda: cf.conv2d(X, np.ones((4, 8, 3, 3)), stride=0), ValueError, "conv2d: stride"),
        (lambda: cf.conv2d(X, np.ones((4, 8, 3, 3)), stride=-1), ValueError, "conv2d: stride must be non-negative, got -1"),
        (lambda: cf.conv2d(X, np.ones((4, 8, 3, 3)), padding="full"), ValueError, "conv2d: padding 'full' is invalid"),
        (lambda: cf.conv2d(X, np.ones((4, 8, 3, 3)), padding_mode="mirror"), ValueError, "padding_mode 'mirror'"),
        (lambda: cf.conv2d(X, np.ones((4, 8, 3, 3)), stride=(1, 2, 3)), ValueError, "stride must be an int or a pair"),
        (lambda: cf.conv2d(X, np.ones((4, 8, 3, 3)), stride="2"), TypeError, "int"),
        (lambda: cf.conv2d("pixels", np.ones((4, 8, 3, 3))), TypeError, "expected an array of numbers, got str"),
        (lambda: cf.max_pool2d(X, 3, padding=2), ValueError, "max_pool2d: padding"),
        (lambda: cf.max_pool2d_backward(np.ones((1, 8, 4, 4)), (1, 8, 8, 8), -np.ones(128)), ValueError, "indices must be non-negative"),
        (lambda: cf.pad(X, (1, 1), value=2.0), ValueError, "pads with zeros only"),
        (lambda: cf.pad(X, (1, -1)), ValueError, "cropping is not supported"),
        (lambda: cf.pad(X, (1, 2, 3)), ValueError, "pad must have 2 or 4 values"),
        (lambda: cf.adaptive_avg_pool2d(X, (2, 3, 4)), ValueError, "output_size must be an int or a pair"),
        (lambda: cf.fold(np.ones((1, 5, 9)), 4, 2), ValueError, "fold: input of shape [1, 5, 9] has 5 rows"),
        (lambda: convlab.filters.kernel("sobel-z"), ValueError, "'sobel-z' is unknown"),
        (lambda: convlab.receptive_field("conv0", 8), ValueError, "receptive_field: spec layer 1 'conv0'"),
        (lambda: convlab.set_num_threads(0), ValueError, "at least 1"),
        (lambda: convlab.filters.kernel("missing.npy"), OSError, "missing.npy"),
    ],
)
def test_errors_are_python_exceptions_with_the_librarys_message(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_sizes_over_the_memory_limit_are_memory_errors():
    code = textwrap.dedent(
        """
        import numpy as np, convlab.functional as cf
        try:
            cf.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 1, 1), np.float32), padding=20000)
        except MemoryError as e:
            print("MemoryError:", e)
        """
    )
    env = dict(os.environ, CONVLAB_MAX_BYTES="100000000")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "MemoryError: conv2d:" in out.stdout, out.stderr
    assert "over the memory limit" in out.stdout


def test_ctrl_c_stops_a_loop_of_ops():
    code = textwrap.dedent(
        """
        import sys, numpy as np, convlab.functional as cf
        x = np.random.rand(8, 16, 64, 64).astype(np.float32)
        w = np.random.rand(16, 16, 3, 3).astype(np.float32)
        print("ready", flush=True)
        try:
            while True:
                cf.conv2d(x, w, padding=1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert "interrupted" in out


def test_ctrl_c_stops_learning_between_steps():
    code = textwrap.dedent(
        """
        import os, signal, numpy as np, convlab
        x = np.random.rand(32, 32).astype(np.float32)
        y = convlab.corr2d(x, [[1.0, -1.0]])
        def on_step(step, loss):
            if step == 3:
                os.kill(os.getpid(), signal.SIGINT)
        try:
            convlab.learn_kernel(x, y, (1, 2), lr="auto", steps=10**9, on_step=on_step)
            print("finished")
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "interrupted", out.stderr


def test_a_callback_error_is_raised_after_the_run():
    def on_step(step, loss):
        raise RuntimeError(f"stop at {step}")

    x = np.ones((4, 5), np.float32)
    with pytest.raises(RuntimeError, match="stop at 0"):
        convlab.learn_kernel(x, np.zeros((4, 4)), (1, 2), on_step=on_step)
