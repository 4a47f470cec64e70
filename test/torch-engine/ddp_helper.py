#!/usr/bin/env python3
"""One optimiser step of the engine's frameworks, in one process (batch 16) or under torchrun
(each of 2 ranks takes 8 rows of the same batch): loss, terms and the update of every tensor,
written by rank 0 for ddp.test.ts.

    ddp_helper.py SPEC_JSON    spec: {out, cases: [{config, syncBn}]}
"""
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "torch"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from mixmask_torch_engine import checkpoint as ck  # noqa: E402
from mixmask_torch_engine.frameworks import make_framework  # noqa: E402
from mixmask_torch_engine.masks import make_views  # noqa: E402
from mixmask_torch_engine.rng import Rng  # noqa: E402
from mixmask_torch_engine.train import sync_framework_bn  # noqa: E402

N, SIZE = 16, 16


def main(spec):
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    g = torch.Generator().manual_seed(1)
    x1_all, x2_all = torch.rand(N, 3, SIZE, SIZE, generator=g), torch.rand(N, 3, SIZE, SIZE, generator=g)
    b = N // world
    x1, x2 = x1_all[rank * b:(rank + 1) * b], x2_all[rank * b:(rank + 1) * b]
    results = []
    for case in spec["cases"]:
        cfg = case["config"]
        torch.manual_seed(0)
        fw = make_framework(cfg)
        before = {k: v.detach().clone() for k, v in ck.framework_state(fw).items()}
        if case["syncBn"] and distributed:
            sync_framework_bn(fw, False)
        model = torch.nn.parallel.DistributedDataParallel(fw) if distributed else fw
        opt = torch.optim.SGD([p for _, p in fw.named_trainable()], lr=0.5, momentum=0.9, weight_decay=5e-4)
        fw.train()
        rng = Rng(11)
        views = make_views(x1, cfg["view"], rng)
        targets = fw.compute_targets(x1, x2, rng)
        total, terms, _ = model(x1, x2, views, targets)
        stats = torch.stack([total.detach(), *[t.detach() for t in terms.values()]])
        if distributed:
            dist.all_reduce(stats)
            stats /= world
        opt.zero_grad()
        total.backward()
        opt.step()
        fw.after_step(targets, 0, 10)
        after = ck.framework_state(fw)
        update = {k: (after[k].double() - before[k].double()).flatten().tolist() for k in before if before[k].is_floating_point()}
        results.append({"loss": stats[0].item(), "terms": dict(zip(terms.keys(), stats[1:].tolist())), "update": update})
    if rank == 0:
        with open(spec["out"], "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(json.loads(sys.argv[1]))
