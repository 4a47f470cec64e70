"""The kNN monitor of the training curves (lib/eval/knn.ts, lib/experiments/run.ts): weighted
kNN (k, T of config.knn) on L2-normalised eval-mode backbone features with the test transform;
the bank is the training images (less the validation split), the queries the validation split
(or the test split without one), each optionally a seeded subset as runDatasets draws it."""
import math

import torch
import torch.nn.functional as F

from .data import load_train, validation_split
from .rng import Rng


def random_indices(n, count, seed):
    """lib/eval/subsets.ts randomIndices: the first `count` of a seeded permutation, ascending."""
    if count >= n:
        return list(range(n))
    return sorted(Rng(seed).permutation(n)[:count])


def monitor_sets(cfg, train, data_dir=None):
    """(bank dataset, bank indices, query dataset, query indices), as runDatasets picks them."""
    labels = train.labels.tolist()
    if cfg.get("validation"):
        rest, held = validation_split(labels, cfg["validation"]["images"], cfg["validation"]["seed"])
        queries, q_pool = train, held
    else:
        rest = list(range(len(labels)))
        queries = load_train(cfg["dataset"], data_dir, split="test")
        q_pool = list(range(len(queries)))
    knn = cfg["knn"]
    bank = [rest[i] for i in random_indices(len(rest), knn["bankSubset"], cfg["seed"] + 11)] if knn.get("bankSubset") else rest
    query = [q_pool[i] for i in random_indices(len(q_pool), knn["querySubset"], cfg["seed"] + 12)] if knn.get("querySubset") else q_pool
    return train, bank, queries, query


def test_transform(img, size):
    """lib/data/recipes.ts testTransform: shorter side to `size` (bilinear, half-pixel), centre crop."""
    x = img.float()[None] / 255
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    h, w = x.shape[2:]
    if h != size or w != size:
        s = size / min(h, w)
        rh, rw = max(size, math.floor(h * s + 0.5)), max(size, math.floor(w * s + 0.5))
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
        top, left = (rh - size) // 2, (rw - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    return x[0]


@torch.no_grad()
def features(backbone, ds, indices, size, device, batch=256):
    out = []
    for s in range(0, len(indices), batch):
        x = torch.stack([test_transform(ds.image(i), size) for i in indices[s:s + batch]]).to(device)
        out.append(F.normalize(backbone(x).float(), dim=1))
    return torch.cat(out)


@torch.no_grad()
def knn_monitor(backbone, cfg, sets, device):
    """top-1 and top-5 (percent) of the weighted kNN vote; ties go to the lower class."""
    bank_ds, bank_idx, query_ds, query_idx = sets
    was_training = backbone.training
    backbone.eval()
    try:
        fb = features(backbone, bank_ds, bank_idx, cfg["imageSize"], device)
        fq = features(backbone, query_ds, query_idx, cfg["imageSize"], device)
    finally:
        backbone.train(was_training)
    yb = bank_ds.labels[bank_idx].to(device)
    yq = query_ds.labels[query_idx].to(device)
    classes = int(max(yb.max(), yq.max())) + 1
    k = min(cfg["knn"]["k"], fb.shape[0])
    c1 = c5 = 0
    for s in range(0, fq.shape[0], 1024):
        sim, idx = (fq[s:s + 1024] @ fb.t()).topk(k, dim=1)
        scores = torch.zeros(sim.shape[0], classes, dtype=torch.float64, device=device)
        scores.scatter_add_(1, yb[idx], torch.exp(sim.double() / cfg["knn"]["t"]))
        truth = yq[s:s + 1024]
        own = scores.gather(1, truth[:, None])
        cls = torch.arange(classes, device=device)[None]
        rank = ((scores > own) | ((scores == own) & (cls < truth[:, None]))).sum(1)
        c1 += int((rank < 1).sum())
        c5 += int((rank < 5).sum())
    n = fq.shape[0]
    return 100 * c1 / n, 100 * c5 / n
