"""``torch.nn`` layers that run on convlab: subclasses of torch's own, with
the same constructor arguments, parameters, initialisation and
``state_dict``, whose forward calls :mod:`convlab.torch.functional` (and so
falls back to torch wherever convlab does not apply).

    >>> import torch, convlab.torch
    >>> conv = convlab.torch.nn.Conv2d(3, 8, 3, padding=1)
    >>> ref = torch.nn.Conv2d(3, 8, 3, padding=1)
    >>> ref.load_state_dict(conv.state_dict())
    <All keys matched successfully>
"""

import torch

from . import functional as CF


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` on convlab (every ``padding_mode`` included)."""

    def _conv_forward(self, input, weight, bias):
        return CF.conv2d(
            input,
            weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
        )


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` on convlab."""

    def forward(self, input, output_size=None):
        if self.padding_mode != "zeros":
            # torch's own error for this case.
            return super().forward(input, output_size)
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return CF.conv_transpose2d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


class MaxPool2d(torch.nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on convlab."""

    def forward(self, input):
        return CF.max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )


class AvgPool2d(torch.nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` on convlab."""

    def forward(self, input):
        return CF.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d):
    """``torch.nn.AdaptiveAvgPool2d`` on convlab."""

    def forward(self, input):
        return CF.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(torch.nn.AdaptiveMaxPool2d):
    """``torch.nn.AdaptiveMaxPool2d`` on convlab."""

    def forward(self, input):
        return CF.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class Unfold(torch.nn.Unfold):
    """``torch.nn.Unfold`` on convlab."""

    def forward(self, input):
        return CF.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(torch.nn.Fold):
    """``torch.nn.Fold`` on convlab."""

    def forward(self, input):
        return CF.fold(
            input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride
        )


__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "Conv2d",
    "ConvTranspose2d",
    "Fold",
    "MaxPool2d",
    "Unfold",
]
