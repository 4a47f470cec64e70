#!/usr/bin/env python3
"""PyTorch side of the interop tests (run with /usr/bin/python3; needs torch + torchvision).

    torch_helper.py features WEIGHTS INPUT OUT [--heads]
        load an export with mixmask_torch.load_exported (strict=True), write its eval-mode
        features (and head outputs) for the NHWC batch "x" of INPUT
    torch_helper.py make SPEC_JSON
        build a torchvision ResNet with random weights and BatchNorm statistics, save it as
        .safetensors and/or .pth.tar (plain or MoCo-style keys), and write its features
"""
import json
import os
import sys

import torch

sys.dont_write_bytecode = True  # no __pycache__ left in lib/interop/python
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "lib", "interop", "python"))
import mixmask_torch as mt  # noqa: E402


def read_input(path):
    tensors, _ = mt.read_safetensors(path)
    return tensors["x"].permute(0, 3, 1, 2).contiguous()  # NHWC (tfjs) → NCHW


def randomize(model, seed):
    """Non-trivial BatchNorm state, so that a swapped mean/var or weight/bias shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 10000, (1,), generator=g)))


def cmd_features(weights, inp, out, heads):
    x = read_input(inp)
    result = {}
    with torch.no_grad():
        if heads:
            model, hs, _ = mt.load_exported(weights, heads=True)
            f = model(x)
            for name, h in hs.items():
                # A predictor (BYOL, SimSiam) reads the projector's output; other heads the features.
                src = result["head.projector"] if name == "predictor" else f
                result["head." + name] = h(src)
        else:
            model, _ = mt.load_exported(weights)
            f = model(x)
    result["features"] = f
    mt.write_safetensors(out, result)


def cmd_make(spec):
    torch.manual_seed(spec.get("seed", 0))
    model = mt.build_resnet(spec["depth"], spec["stem"], spec["width"])
    randomize(model, spec.get("seed", 0))
    model.eval()
    with torch.no_grad():
        feats = model(read_input(spec["input"]))
    mt.write_safetensors(spec["features"], {"features": feats})
    sd = model.state_dict()
    if spec.get("moco"):
        # The layout of the official MoCo / MixMask checkpoints: DataParallel's "module.", the
        # online encoder_q with its MLP head as fc, a momentum encoder_k and the queue.
        dim = mt.model_feature_dim(model)
        fc = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.Linear(dim, 128))
        key_model = mt.build_resnet(spec["depth"], spec["stem"], spec["width"])
        randomize(key_model, spec.get("seed", 0) + 1)
        state = {}
        for k, v in sd.items():
            state["module.encoder_q." + k] = v
        for k, v in fc.state_dict().items():
            state["module.encoder_q.fc." + k] = v
        for k, v in key_model.state_dict().items():
            state["module.encoder_k." + k] = v
        state["module.queue"] = torch.randn(128, 64)
        state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
        sd = state
    if spec.get("drop"):
        sd = {k: v for k, v in sd.items() if k != spec["drop"]}
    if spec.get("safetensors"):
        mt.write_safetensors(spec["safetensors"], sd, {"format": "pt"})
    if spec.get("pth"):
        torch.save({"epoch": 7, "arch": "resnet%d" % spec["depth"], "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}, spec["pth"])


def main(argv):
    if argv[0] == "features":
        cmd_features(argv[1], argv[2], argv[3], "--heads" in argv[4:])
    elif argv[0] == "make":
        cmd_make(json.loads(argv[1]))
    else:
        sys.exit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    torch.set_num_threads(1)  # the test machine's cores are shared with the tfjs side
    main(sys.argv[1:])
