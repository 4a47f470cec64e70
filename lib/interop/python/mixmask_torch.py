#!/usr/bin/env python3
"""Use mixmask-ts weights in PyTorch (torch + torchvision only; no `safetensors` package).

As a library (copy this file next to your code, or add its folder to sys.path):

    from mixmask_torch import load_exported
    model, meta = load_exported("backbone.safetensors")   # torchvision ResNet, fc = Identity
    features = model(x)          # x: [N, 3, H, W] float32 RGB in [0, 1], normalised as meta["normalize"]

    model, heads, meta = load_exported("backbone.safetensors", heads=True)   # files exported with --heads
    z = heads["projector"](model(x))

The model is a torchvision ResNet; what differs from `torchvision.models.resnetXX()` is
written in the file's metadata and rebuilt by build_resnet():
  * CIFAR stem:  conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False), maxpool = nn.Identity()
  * width != 64: the stages are rebuilt with torchvision's own blocks at width·{1,2,4,8}
  * always:      fc = nn.Identity()  (the export has no classifier; Identity has no parameters,
                 so load_state_dict(strict=True) checks every tensor of the backbone)
For fine-tuning, replace fc afterwards: model.fc = nn.Linear(model_feature_dim(model), classes).

From the command line:
    python3 mixmask_torch.py check FILE [--size 224]           load strictly, print the feature size
    python3 mixmask_torch.py to-moco FILE OUT.pth.tar          MoCo-style checkpoint (module.encoder_q.*)
    python3 mixmask_torch.py to-detectron2 FILE OUT.pkl        Detectron2 weights (stem./res2./…)
"""
import json
import os
import pickle
import struct
import sys

import torch
from torch import nn

_DTYPES = {"F32": torch.float32, "I64": torch.int64, "I32": torch.int32, "F64": torch.float64, "F16": torch.float16}
_CODES = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32"}


def read_safetensors(path):
    """Returns ({name: tensor}, {metadata}) from a .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        dtype = _DTYPES.get(e["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {e['dtype']}")
        # bytearray: frombuffer needs a writable buffer to give a tensor we may modify.
        buf = bytearray(raw[base + begin:base + end])
        t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        if sys.byteorder != "little":
            t = torch.from_numpy(t.numpy().byteswap())
        out[name] = t.reshape(e["shape"])
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (float32 / int64 / int32) atomically."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _CODES:
            t = t.to(torch.float32 if t.is_floating_point() else torch.int64)
        arr = t.numpy()
        blob = (arr.byteswap() if sys.byteorder != "little" else arr).tobytes()
        header[name] = {"dtype": _CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def build_resnet(depth=50, stem="imagenet", width=64):
    """A torchvision ResNet matching mixmask-ts's ResNet(depth, stem, width), with fc = Identity."""
    import torchvision
    from torchvision.models import resnet as tvr

    if depth not in (18, 34, 50):
        raise ValueError(f"depth must be 18, 34 or 50, got {depth}")
    model = getattr(torchvision.models, f"resnet{depth}")()
    block = tvr.Bottleneck if depth == 50 else tvr.BasicBlock
    if width != 64:
        # torchvision hard-codes 64 as the base width: rebuild the stages with its own
        # _make_layer (same blocks, same key names) starting from `width` channels.
        counts = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
        model.inplanes = width
        model.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        model.bn1 = nn.BatchNorm2d(width)
        for i, n in enumerate(counts):
            setattr(model, f"layer{i + 1}", model._make_layer(block, width * 2 ** i, n, stride=1 if i == 0 else 2))
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif stem != "imagenet":
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    model.fc = nn.Identity()
    return model


def model_feature_dim(model):
    """Size of the pooled features (what fc would receive)."""
    last = model.layer4[-1]
    return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features


def build_head(spec):
    """nn.Sequential (or nn.Linear) from a head description in the export's metadata."""
    def make(m):
        if m["type"] == "Linear":
            return nn.Linear(m["in"], m["out"], bias=m["bias"])
        if m["type"] == "BatchNorm1d":
            return nn.BatchNorm1d(m["features"], affine=m["affine"])
        if m["type"] == "ReLU":
            return nn.ReLU(inplace=True)
        raise ValueError(f"unknown module type {m['type']!r}")

    modules = [make(m) for m in spec["modules"]]
    return nn.Sequential(*modules) if spec["sequential"] else modules[0]


def load_exported(path, heads=False, strict=True):
    """Builds the torchvision model described by an export and loads it (strict by default).

    Returns (model, meta), or (model, {name: head}, meta) with heads=True. meta holds "arch",
    "normalize" (the pixel normalisation the weights were trained with, or None) and the raw
    "metadata" strings. Models are returned in eval mode.
    """
    state, raw = read_safetensors(path)
    if "mixmask.arch" not in raw:
        raise ValueError(f"{path}: no 'mixmask.arch' metadata; build the model with build_resnet(depth, stem, width)")
    arch = json.loads(raw["mixmask.arch"])
    head_specs = json.loads(raw.get("mixmask.heads", "{}"))
    head_of = lambda k: k.split(".", 1)[0] in head_specs  # noqa: E731
    model = build_resnet(arch["depth"], arch["stem"], arch["width"])
    model.load_state_dict({k: v for k, v in state.items() if not head_of(k)}, strict=strict)
    model.eval()
    meta = {"arch": arch, "normalize": json.loads(raw["mixmask.normalize"]) if "mixmask.normalize" in raw else None, "metadata": raw}
    if not heads:
        return model, meta
    built = {}
    for name, spec in head_specs.items():
        h = build_head(spec)
        h.load_state_dict({k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}, strict=strict)
        built[name] = h.eval()
    return model, built, meta


def detectron2_key(k):
    """torchvision ResNet key → Detectron2 ResNet key (the renaming MoCo's converter performs)."""
    parts = k.split(".")
    if parts[0] in ("conv1", "bn1"):  # stem
        return "stem.conv1." + ".".join(parts[1:]) if parts[0] == "conv1" else "stem.conv1.norm." + ".".join(parts[1:])
    stage, block, layer = parts[0], parts[1], parts[2]
    rest = parts[3:]
    res = "res%d" % (int(stage[len("layer"):]) + 1)
    if layer == "downsample":
        layer, rest = ("shortcut", rest[1:]) if rest[0] == "0" else ("shortcut.norm", rest[1:])
    elif layer.startswith("bn"):
        layer = "conv%s.norm" % layer[2:]
    return ".".join([res, block, layer] + rest)


def _main(argv):
    import argparse

    p = argparse.ArgumentParser(description="mixmask-ts weights in PyTorch")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="load strictly and run one forward pass")
    c.add_argument("file")
    c.add_argument("--size", type=int, default=None)
    m = sub.add_parser("to-moco", help="write a MoCo-style .pth.tar (state_dict with module.encoder_q.*)")
    m.add_argument("file")
    m.add_argument("out")
    d = sub.add_parser("to-detectron2", help="write Detectron2 weights (.pkl)")
    d.add_argument("file")
    d.add_argument("out")
    args = p.parse_args(argv)

    if args.cmd == "check":
        model, meta = load_exported(args.file)
        size = args.size or (32 if meta["arch"]["stem"] == "cifar" else 224)
        with torch.no_grad():
            y = model(torch.rand(2, 3, size, size))
        print(json.dumps({"arch": meta["arch"], "features": list(y.shape), "normalize": meta["normalize"]}))
        return
    state, raw = read_safetensors(args.file)
    heads = json.loads(raw.get("mixmask.heads", "{}"))
    backbone = {k: v for k, v in state.items() if k.split(".", 1)[0] not in heads}
    arch = json.loads(raw["mixmask.arch"]) if "mixmask.arch" in raw else None
    if args.cmd == "to-moco":
        obj = {"state_dict": {"module.encoder_q." + k: v for k, v in backbone.items()}, "epoch": 0}
        if arch:
            obj["arch"] = "resnet%d" % arch["depth"]
        torch.save(obj, args.out)
        print(f"{args.file} -> {args.out}: {len(backbone)} tensors under module.encoder_q.")
        return
    if arch and arch["stem"] != "imagenet":
        sys.exit("error: Detectron2's ResNet has the ImageNet stem (7×7 conv + max-pool); this backbone has the CIFAR stem")
    model = {detectron2_key(k): v.numpy() for k, v in backbone.items() if not k.endswith("num_batches_tracked")}
    with open(args.out, "wb") as f:
        pickle.dump({"model": model, "__author__": "mixmask-ts", "matching_heuristics": True}, f)
    print(f"{args.file} -> {args.out}: {len(model)} arrays in Detectron2 naming")


if __name__ == "__main__":
    _main(sys.argv[1:])
