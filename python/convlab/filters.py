"""Classic image kernels by name, and filtering an image with one.

    >>> import convlab
    >>> convlab.filters.kernel("sobel-x")
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]], dtype=float32)
"""

from . import _native

#: The names :func:`kernel` knows (parametrised ones with their parameter).
NAMES = tuple(_native.kernel_names())


def kernel(spec: str):
    """The 2-D kernel ``spec`` names: a name from :data:`NAMES` (``"sobel-x"``,
    ``"gaussian:1.5"``, ``"box:5"``), a literal (``"[[1, -1], [2, 0]]"``) or a
    ``.npy`` file. Raises ``ValueError`` for an unknown name or a bad literal.
    """
    return _native.kernel(spec)


def apply(image, kernel, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """Filter an ``[H, W]`` or ``[C, H, W]`` image with one 2-D kernel (a
    name, a literal or an array), each channel on its own. ``padding`` may be
    ``"same"``; ``padding_mode`` is ``"zeros"``, ``"reflect"``,
    ``"replicate"`` or ``"circular"``.
    """
    if isinstance(kernel, str):
        kernel = _native.kernel(kernel)
    return _native.filter_image(image, kernel, stride, padding, dilation, padding_mode)


__all__ = ["NAMES", "apply", "kernel"]
