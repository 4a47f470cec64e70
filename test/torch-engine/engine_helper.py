#!/usr/bin/env python3
"""PyTorch side of the torch-engine tests (run with /usr/bin/python3; torch + torchvision).

    engine_helper.py grids SPEC_JSON     draw grids with the ported generator, write them as JSON
    engine_helper.py parity SPEC_JSON    one training-mode pass per (framework, view method) from a
                                         checkpoint of ours: loss terms and every gradient, in our layout
"""
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "torch"))

import torch  # noqa: E402

from mixmask_torch_engine import checkpoint as ck  # noqa: E402
from mixmask_torch_engine import masks  # noqa: E402
from mixmask_torch_engine.frameworks import make_framework  # noqa: E402
from mixmask_torch_engine.rng import Rng  # noqa: E402


def cmd_grids(spec):
    """spec: {out, cases: [{type, g, ratio, seeds: [s0, count], draws}]}: per case, `draws` grids
    from each seeded generator, as strings of 0/1 (keep) for an exact comparison."""
    out = []
    for c in spec["cases"]:
        s0, count = c["seeds"]
        grids = []
        for s in range(s0, s0 + count):
            rng = Rng(s)
            for _ in range(c.get("draws", 1)):
                gr = masks.make_grid(c["type"], c["g"], c["ratio"], rng)
                grids.append("".join(str(v) for v in gr.keep))
        out.append(grids)
    with open(spec["out"], "w") as f:
        json.dump(out, f)


def cmd_parity(spec):
    """spec: {input, cases: [{config, checkpoint, seed, views: [viewSpec], out: [file per view]}]}."""
    x, _ = ck.mixmask_torch.read_safetensors(spec["input"])
    x1 = x["x1"].permute(0, 3, 1, 2).contiguous()
    x2 = x["x2"].permute(0, 3, 1, 2).contiguous()
    for case in spec["cases"]:
        tensors, _ = ck.read(case["checkpoint"])
        for view_spec, out in zip(case["views"], case["out"]):
            fw = make_framework(case["config"])
            ck.load_framework_state(fw, tensors, case["checkpoint"])
            fw.train()
            rng = Rng(case["seed"])
            views = masks.make_views(x1, view_spec, rng)
            targets = fw.compute_targets(x1, x2, rng)
            total, terms, std = fw(x1, x2, views, targets)
            total.backward()
            grads = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in fw.named_trainable()}
            meta = {"loss": total.item(), "terms": {k: v.item() for k, v in terms.items()}, "embeddingStd": std.item(),
                    "lambdas": [v.lambdas for v in views]}
            ck.mixmask_torch.write_safetensors(out, {n: ck.to_ours(g, n) for n, g in grads.items()}, {"result": json.dumps(meta)})


def cmd_order(spec):
    """spec: {config, world, out}: the engine's training images (validation split and subset) and
    the images of every step of epoch 0, as the ranks' samplers deal them (ranks concatenated)."""
    from mixmask_torch_engine.data import RunSampler, load_train, training_indices
    from mixmask_torch_engine.rng import stream_seed
    cfg = spec["config"]
    base = load_train(cfg["dataset"])
    indices = training_indices(cfg, base.labels.tolist())
    per_rank = [[k[0] for k in RunSampler(indices, cfg["batchSize"], cfg["seed"], spec["world"], r)] for r in range(spec["world"])]
    local = cfg["batchSize"] // spec["world"]
    steps = len(indices) // cfg["batchSize"]
    epoch0 = [i for s in range(steps) for r in range(spec["world"]) for i in per_rank[r][s * local:(s + 1) * local]]
    with open(spec["out"], "w") as f:
        json.dump({"indices": indices, "epoch0": epoch0, "streamSeeds": [stream_seed(sd, e, s, k) for sd, e, s, k in spec["streams"]]}, f)


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd, arg = sys.argv[1], json.loads(sys.argv[2])
    {"grids": cmd_grids, "parity": cmd_parity, "order": cmd_order}[cmd](arg)
