"""The chapter's tools with Python-shaped results."""

from dataclasses import dataclass, field
from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np

from . import _native


@dataclass
class LearnResult:
    """What :func:`learn_kernel` did.

    ``losses`` holds the loss before each step's update (as the book prints
    it); ``outcome`` is ``"finished"``, ``"converged"`` (the loss reached
    ``stop_below``) or ``"diverged"`` (the loss blew up and training
    stopped; ``message`` says which rates are stable).
    """

    kernel: np.ndarray
    bias: Optional[float]
    lr: float
    losses: List[float]
    outcome: str
    message: str
    step: Optional[int] = None
    stable_below: Optional[float] = None
    extra: dict = field(default_factory=dict, repr=False)


def learn_kernel(
    x,
    y,
    kernel_size,
    *,
    bias: bool = False,
    lr=0.03,
    steps: int = 10,
    optimizer: str = "sgd",
    mode: str = "correlation",
    seed: int = 0,
    init=None,
    init_bias: Optional[float] = None,
    stop_below: Optional[float] = None,
    on_step: Optional[Callable[[int, float], None]] = None,
) -> LearnResult:
    """Learn a kernel ``w`` (and a bias) with ``corr2d(x, w) + b ~ y`` by
    gradient descent on the summed squared error, the book's 6.2.4 loop.

    ``lr`` is a number or ``"auto"`` (half the largest stable rate for SGD,
    see :func:`max_stable_lr`); ``optimizer`` ``"sgd"`` or ``"adam"``;
    ``mode`` ``"correlation"`` or ``"convolution"`` (the kernel flipped).
    ``on_step(step, loss)`` is called after each loss is computed. A run
    whose loss blows up stops early with ``outcome == "diverged"``.

    >>> import numpy as np, convlab
    >>> X = np.ones((6, 8), np.float32); X[:, 2:6] = 0
    >>> Y = convlab.corr2d(X, [[1.0, -1.0]])
    >>> r = convlab.learn_kernel(X, Y, (1, 2), lr="auto", steps=50)
    >>> np.round(r.kernel, 2)
    array([[ 1., -1.]], dtype=float32)
    """
    d = _native.learn_kernel(
        x,
        y,
        kernel_size,
        bias=bias,
        lr=lr,
        steps=steps,
        optimizer=optimizer,
        mode=mode,
        seed=seed,
        init=init,
        init_bias=init_bias,
        stop_below=stop_below,
        on_step=on_step,
    )
    # The library's advice names the command-line option.
    message = d["message"].replace("--lr auto", "lr='auto'")
    return LearnResult(
        kernel=d["kernel"],
        bias=d["bias"],
        lr=d["lr"],
        losses=d["losses"],
        outcome=d["outcome"],
        message=message,
        step=d.get("step"),
        stable_below=d.get("stable_below"),
    )


def max_stable_lr(x, kernel_size, bias: bool = False) -> float:
    """The learning rates below which plain gradient descent on
    :func:`learn_kernel`'s loss converges from every start (``2 / lambda_max``
    of the loss's Hessian)."""
    return _native.max_stable_lr(x, kernel_size, bias)


class LayerField(NamedTuple):
    """One layer of :func:`receptive_field`: its output size, receptive
    field and jump (input pixels between neighbouring outputs) as
    ``(h, w)`` pairs, and the centre of the first output's field."""

    layer: str
    out: Tuple[int, int]
    rf: Tuple[int, int]
    jump: Tuple[int, int]
    centre: Tuple[float, float]


class ReceptiveFields(list):
    """A list of :class:`LayerField` that prints as the CLI's table."""

    def __init__(self, rows, input_size):
        super().__init__(rows)
        self.input_size = input_size

    def __str__(self):
        def pair(p):
            return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"

        def centre(c):
            r, col = (f"{v:g}" for v in c)
            return r if r == col else f"{r},{col}"

        width = max([5] + [len(r.layer) for r in self])
        fmt = "{:>3}  {:<%d}  {:>9}  {:>5}  {:>5}  {:>7}" % width
        h, w = self.input_size
        lines = [
            fmt.format("#", "layer", "output", "rf", "jump", "centre"),
            fmt.format(0, "input", f"{h}x{w}", 1, 1, 0),
        ]
        for i, r in enumerate(self, 1):
            out = f"{r.out[0]}x{r.out[1]}"
            lines.append(fmt.format(i, r.layer, out, pair(r.rf), pair(r.jump), centre(r.centre)))
        return "\n".join(lines)


def receptive_field(spec: str, input_size) -> ReceptiveFields:
    """Receptive fields of a layer stack on an input of ``input_size``
    (``N`` or ``(H, W)``). ``spec`` is the CLI's: comma-separated layers
    ``convK``, ``maxpoolK``, ``avgpoolK`` (``K`` = ``N`` or ``HxW``) or
    ``relu``/``bn``..., with options ``sN`` stride, ``pN``/``psame``
    padding, ``dN`` dilation, ``ceil``.

    >>> import convlab
    >>> print(convlab.receptive_field("conv3, conv3, maxpool2", 8))
      #  layer     output     rf   jump   centre
      0  input        8x8      1      1        0
      1  conv3        6x6      3      1        1
      2  conv3        4x4      5      1        2
      3  maxpool2     2x2      6      2      2.5
    """
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    rows = [LayerField(**d) for d in _native.receptive_field(spec, input_size)]
    return ReceptiveFields(rows, tuple(input_size))


def tour(file=None) -> None:
    """Print the chapter (Dive into Deep Learning 6.2-6.5) cell by cell with
    the book's numbers, as ``convlab tour`` does."""
    import sys

    print(_native.tour(), end="", file=file or sys.stdout)
