"""Backbones and heads with our state names (docs/method.md#backbones-and-heads): the backbone is
torchvision's ResNet built by lib/interop/python/mixmask_torch.py (whose names are ours), the
heads mirror lib/models/heads.ts (`<i>.linear.*`, `<i>.bn.*`, `out_bn.*`), so a state_dict key
here is the checkpoint key there; only the layouts differ (see checkpoint.py)."""
import os
import sys

import torch
from torch import nn

_INTEROP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lib", "interop", "python")
if _INTEROP not in sys.path:
    sys.path.insert(0, _INTEROP)
import mixmask_torch  # noqa: E402  (read/write safetensors, build_resnet)


def build_backbone(cfg):
    return mixmask_torch.build_resnet(cfg["depth"], cfg["stem"], cfg.get("width", 64))


def feature_dim(backbone):
    return mixmask_torch.model_feature_dim(backbone)


class _Layer(nn.Module):
    def __init__(self, i, o, bn, bias):
        super().__init__()
        self.linear = nn.Linear(i, o, bias=bias)
        if bn:
            self.bn = nn.BatchNorm1d(o)
        self.has_bn = bn


class MlpHead(nn.Module):
    """Linear → [BN] → ReLU per hidden layer, a final Linear, an optional output BatchNorm."""

    def __init__(self, in_dim, hidden, out_dim, bn=True, output_bn=False):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.n = len(dims) - 1
        for i in range(self.n):
            last = i == self.n - 1
            has_bn = (not last) and bn
            self.add_module(str(i), _Layer(dims[i], dims[i + 1], has_bn, not has_bn))
        if output_bn:
            self.out_bn = nn.BatchNorm1d(out_dim, affine=output_bn == "affine")

    def forward(self, x):
        for i in range(self.n):
            layer = getattr(self, str(i))
            x = layer.linear(x)
            if layer.has_bn:
                x = torch.relu(layer.bn(x))
            elif i < self.n - 1:
                x = torch.relu(x)
        if hasattr(self, "out_bn"):
            x = self.out_bn(x)
        return x
