"""PyTorch CPU peer of bench/sections/10-train.ts: the same ResNet-18 (CIFAR stem), 2-layer
projection head and NT-Xent loss, trained with SGD + momentum, at the same thread count.

Prints one JSON object: {"batch", "threads", "forward_img_s", "train_img_s", "forward_ms",
"train_ms", "torch", "autocast"}. Times are medians over --steps steps after --warmup steps.
--autocast bf16 runs the forward passes (and the loss) under torch.autocast('cpu',
dtype=torch.bfloat16): the peer of our wasm+onednn bf16 mode (bench/sections/11-train-onednn.ts).
Run with Debian's interpreter: /usr/bin/python3 bench/peer/pytorch_resnet.py --batch 32.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, 0, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(h))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet18Cifar(nn.Module):
    """torchvision's resnet18 with the CIFAR stem (3x3 conv, stride 1, no max-pool), pooled."""

    def __init__(self, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for stage in range(4):
            planes = width * 2 ** stage
            blocks = []
            for i in range(2):
                stride = 2 if i == 0 and stage > 0 else 1
                blocks.append(BasicBlock(cin, planes, stride))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.feature_dim = cin

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layers(h)
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)


def mlp_head(in_dim, hidden, out_dim):
    # Same shape as lib/models MlpHead(in, [hidden], out): Linear(no bias) -> BN -> ReLU -> Linear
    return nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def nt_xent(a, b, t):
    """SimCLR's NT-Xent over 2N rows, mean over rows (lib/losses ntXent)."""
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.t() / t
    sim = sim - torch.eye(2 * n) * 1e9
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def median_ms(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none")
    args = p.parse_args()
    bf16 = args.autocast == "bf16"

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = ResNet18Cifar(args.width)
    head = mlp_head(backbone.feature_dim, 512, 128)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.03, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    half = args.batch // 2

    def train_step():
        backbone.train()
        head.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = head(backbone(x))
            loss = nt_xent(z[:half], z[half:], 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward():
        backbone.eval()
        head.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            head(backbone(x))

    train_ms = median_ms(train_step, args.steps, args.warmup)
    forward_ms = median_ms(forward, args.steps, args.warmup)
    print(json.dumps({
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "forward_ms": forward_ms,
        "train_ms": train_ms,
        "forward_img_s": args.batch * 1e3 / forward_ms,
        "train_img_s": args.batch * 1e3 / train_ms,
        "torch": torch.__version__,
        "autocast": args.autocast,
    }))


if __name__ == "__main__":
    main()
