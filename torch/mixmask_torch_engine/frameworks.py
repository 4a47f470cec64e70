"""The five frameworks with the loss template of docs/method.md#the-loss-template, mirroring
lib/frameworks/*.ts: the same heads, targets, pair losses and state names (backbone.*,
projector.*, predictor.*, target.backbone.*, target.projector.*, queue)."""
import copy
import math

import torch
import torch.distributed as dist
from torch import nn

from . import losses as L
from .models import MlpHead, build_backbone, feature_dim
from .rng import Rng

FRAMEWORKS = ("moco-v1", "moco-v2", "simclr", "byol", "simsiam")


def world():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_gather_grad(x):
    """Rows of every rank, in rank order, with gradients flowing back to each rank's rows."""
    import torch.distributed.nn.functional as dnn
    return torch.cat(dnn.all_gather(x.contiguous()), 0)


@torch.no_grad()
def all_gather_cat(x):
    """Rows of every rank, in rank order (no gradient)."""
    out = [torch.empty_like(x) for _ in range(world())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)


class Framework(nn.Module):
    """Online backbone + heads, optional target networks, the loss template. `forward` is the
    whole online computation of a step (every forward pass and the loss), so that one
    DistributedDataParallel call sees one forward and one backward."""

    name = ""

    def __init__(self, backbone_cfg):
        super().__init__()
        self.backbone = build_backbone(backbone_cfg)
        self.dim_in = feature_dim(self.backbone)

    # -- what a framework says ------------------------------------------------------------
    def online(self, x):
        raise NotImplementedError

    @torch.no_grad()
    def compute_targets(self, x1, x2, rng):
        return []

    def base_loss(self, o1, o2, targets):
        raise NotImplementedError

    def second_view_target(self, o2, targets):
        raise NotImplementedError

    def row_loss(self, a, b, targets):
        raise NotImplementedError

    @torch.no_grad()
    def after_step(self, targets, step, total_steps):
        pass

    def scalars(self):
        return {}

    def load_scalars(self, s):
        pass

    def named_trainable(self):
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("target.")]

    # -- the template ---------------------------------------------------------------------
    def forward(self, x1, x2, views, targets):
        """Returns (total loss, {term: scalar tensor}, embedding std). `views` are masks.View."""
        o1 = self.online(x1)
        o2 = self.online(x2)
        base = self.base_loss(o1, o2, targets)
        terms = {"base": base}
        with torch.no_grad():
            emb_std = L.l2n(o1[0].float()).var(0, unbiased=False).sqrt().mean()
        total = base
        t2 = self.second_view_target(o2, targets)
        for i, v in enumerate(views):
            om = self.online(v.mixed)[1]
            if v.inverse is None or not v.asymmetric:
                term = self.row_loss(om, t2, targets).mean()
                terms[f"erase{i}" if v.inverse is None else f"mix{i}.plain"] = term
                total = total + term
                continue
            own, partner = L.mixed_terms(lambda a, b: self.row_loss(a, b, targets), om, t2, v.lambdas, v.inverse)
            terms[f"mix{i}.own"] = own
            terms[f"mix{i}.partner"] = partner
            total = total + own + partner
        return total, terms, emb_std


def _ema(framework, m):
    params = dict(framework.named_parameters())
    for name, t in params.items():
        if name.startswith("target."):
            t.mul_(m).add_(params[name[len("target."):]].detach(), alpha=1 - m)


class _Target(nn.Module):
    pass


def _copy_target(framework, names):
    """The EMA copies of online modules under target.<name> (lib/frameworks/target.ts)."""
    framework.target = _Target()
    for n in names:
        t = copy.deepcopy(getattr(framework, n))
        for p in t.parameters():
            p.requires_grad_(False)
        framework.target.add_module(n, t)


class Moco(Framework):
    def __init__(self, backbone_cfg, version, dim, queue_size, momentum, temperature, bn_splits=4, seed=0):
        super().__init__(backbone_cfg)
        self.name = f"moco-v{version}"
        d = self.dim_in
        self.projector = nn.Linear(d, dim) if version == 1 else MlpHead(d, [d], dim, bn=False)
        _copy_target(self, ["backbone", "projector"])
        self.momentum, self.temperature, self.bn_splits, self.queue_size = momentum, temperature, bn_splits, queue_size
        init = torch.tensor(Rng(seed + 2).fill_normal(queue_size * dim), dtype=torch.float32).reshape(queue_size, dim)
        self.register_buffer("queue", L.l2n(init))
        self.queue_ptr = 0

    def online(self, x):
        q = self.projector(self.backbone(x))
        return q, q

    def _keys(self, x):
        return self.target.projector(self.target.backbone(x))

    @torch.no_grad()
    def compute_targets(self, x1, x2, rng):
        if world() > 1:
            # The official shuffle-BN: keys shuffled across ranks, each rank's BatchNorm sees its shard.
            n, w, r = x2.shape[0], world(), rank()
            xg = all_gather_cat(x2)
            perm = torch.tensor(rng.permutation(n * w), device=x2.device)
            inv = torch.argsort(perm)
            k = self._keys(xg[perm[r * n:(r + 1) * n]])
            return [all_gather_cat(k)[inv][r * n:(r + 1) * n]]
        n = x2.shape[0]
        splits = max(1, min(self.bn_splits, n // 2))
        perm = rng.permutation(n)
        inv = [0] * n
        for i, p in enumerate(perm):
            inv[p] = i
        shuffled = x2[perm]
        sizes = [(i + 1) * n // splits - i * n // splits for i in range(splits)]
        keys = torch.cat([self._keys(c) for c in torch.split(shuffled, sizes, 0)], 0)
        return [keys[inv]]

    def base_loss(self, o1, o2, targets):
        return L.info_nce(o1[1], targets[0], self.queue, self.temperature).mean()

    def second_view_target(self, o2, targets):
        return targets[0]

    def row_loss(self, a, b, targets):
        return L.info_nce(a, b, self.queue, self.temperature)

    @torch.no_grad()
    def after_step(self, targets, step, total_steps):
        _ema(self, self.momentum)
        k = L.l2n(targets[0])
        if world() > 1:
            k = all_gather_cat(k)
        n = min(k.shape[0], self.queue_size)
        idx = (torch.arange(n, device=k.device) + self.queue_ptr) % self.queue_size
        self.queue[idx] = k[:n]
        self.queue_ptr = (self.queue_ptr + n) % self.queue_size

    def scalars(self):
        return {"queuePtr": self.queue_ptr}

    def load_scalars(self, s):
        self.queue_ptr = int(s.get("queuePtr", 0))


class Simclr(Framework):
    name = "simclr"

    def __init__(self, backbone_cfg, proj_hidden, dim, temperature):
        super().__init__(backbone_cfg)
        self.projector = MlpHead(self.dim_in, [proj_hidden], dim)
        self.temperature = temperature

    def online(self, x):
        z = self.projector(self.backbone(x))
        return z, z

    # Under DDP the negatives are every rank's rows (gathered with their gradients), so W
    # processes train exactly as one process with the whole batch.
    def base_loss(self, o1, o2, targets):
        if world() > 1:
            return L.nt_xent(all_gather_grad(o1[1]), all_gather_grad(o2[1]), self.temperature).mean()
        return L.nt_xent(o1[1], o2[1], self.temperature).mean()

    def second_view_target(self, o2, targets):
        return all_gather_grad(o2[1]) if world() > 1 else o2[1]

    def row_loss(self, a, b, targets):
        return L.cross_view_nce(a, b, self.temperature, rank() * a.shape[0] if world() > 1 else 0)


class Byol(Framework):
    name = "byol"

    def __init__(self, backbone_cfg, proj_hidden, dim, pred_hidden, tau):
        super().__init__(backbone_cfg)
        self.projector = MlpHead(self.dim_in, [proj_hidden], dim)
        self.predictor = MlpHead(dim, [pred_hidden], dim)
        _copy_target(self, ["backbone", "projector"])
        self.tau = tau

    def online(self, x):
        z = self.projector(self.backbone(x))
        return z, self.predictor(z)

    @torch.no_grad()
    def compute_targets(self, x1, x2, rng):
        return [self.target.projector(self.target.backbone(x)) for x in (x1, x2)]

    def base_loss(self, o1, o2, targets):
        t1, t2 = targets
        return L.byol_loss(o1[1], t2).mean() + L.byol_loss(o2[1], t1).mean()

    def second_view_target(self, o2, targets):
        return targets[1]

    def row_loss(self, a, b, targets):
        return L.byol_loss(a, b)

    @torch.no_grad()
    def after_step(self, targets, step, total_steps):
        _ema(self, 1 - (1 - self.tau) * (math.cos(math.pi * step / max(1, total_steps)) + 1) / 2)


class Simsiam(Framework):
    name = "simsiam"

    def __init__(self, backbone_cfg, proj_hidden, dim, pred_hidden):
        super().__init__(backbone_cfg)
        self.projector = MlpHead(self.dim_in, [proj_hidden], dim, output_bn="no-affine")
        self.predictor = MlpHead(dim, [pred_hidden], dim)

    def online(self, x):
        z = self.projector(self.backbone(x))
        return z, self.predictor(z)

    def base_loss(self, o1, o2, targets):
        return 0.5 * (L.simsiam_loss(o1[1], o2[0].detach()).mean() + L.simsiam_loss(o2[1], o1[0].detach()).mean())

    def second_view_target(self, o2, targets):
        return o2[0].detach()

    def row_loss(self, a, b, targets):
        return L.simsiam_loss(a, b)


def make_framework(config):
    """The framework of a RunConfig (lib/frameworks/index.ts makeFramework)."""
    name, b, h, seed = config["framework"], config["backbone"], config["heads"], config.get("seed", 0)
    if name in ("moco-v1", "moco-v2"):
        return Moco(b, 1 if name == "moco-v1" else 2, h["dim"], h["queueSize"], h.get("targetMomentum", h.get("momentum")), h["temperature"], h.get("bnSplits", 4), seed)
    if name == "simclr":
        return Simclr(b, h["projHidden"], h["dim"], h["temperature"])
    if name == "byol":
        return Byol(b, h["projHidden"], h["dim"], h["predHidden"], h.get("targetMomentum", h.get("momentum")))
    if name == "simsiam":
        return Simsiam(b, h["projHidden"], h["dim"], h["predHidden"])
    raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {name!r}")
