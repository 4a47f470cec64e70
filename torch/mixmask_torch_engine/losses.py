"""The frameworks' per-row pair losses (lib/losses/index.ts): one value per row, so that the
MixMask terms can weight rows by their own λ."""
import torch
import torch.nn.functional as F


def l2n(x):
    return F.normalize(x, dim=1, eps=1e-12)


def info_nce(q, k, queue, temperature):
    """MoCo: logits [q·k, q·queueᵀ] / t, cross-entropy with class 0."""
    qn, kn = l2n(q), l2n(k)
    pos = (qn * kn).sum(1, keepdim=True)
    neg = qn @ l2n(queue).t()
    logits = torch.cat([pos, neg], 1) / temperature
    return -torch.log_softmax(logits, 1)[:, 0]


def nt_xent(a, b, temperature):
    """SimCLR's NT-Xent over 2N embeddings; the 2N row losses (a's rows, then b's)."""
    n = a.shape[0]
    z = l2n(torch.cat([a, b], 0))
    sim = (z @ z.t()) / temperature
    logits = sim - torch.eye(2 * n, device=z.device, dtype=z.dtype) * 1e9
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return -torch.log_softmax(logits, 1).gather(1, pos[:, None])[:, 0]


def cross_view_nce(anchors, targets, temperature, offset=0):
    """Anchor i's positive is target row offset + i (offset: where a rank's rows start when the
    targets are every rank's), the other target rows its negatives."""
    logits = (l2n(anchors) @ l2n(targets).t()) / temperature
    idx = torch.arange(anchors.shape[0], device=anchors.device) + offset
    return -torch.log_softmax(logits, 1).gather(1, idx[:, None])[:, 0]


def cosine(a, b):
    return (l2n(a) * l2n(b)).sum(1)


def byol_loss(p, z):
    return 2 - 2 * cosine(p, z)


def simsiam_loss(p, z):
    return -cosine(p, z)


def mixed_terms(row_loss, out, targets, lambdas, inverse):
    """The asymmetric terms of one mixed view (docs/method.md#the-loss-template)."""
    lam = torch.tensor(lambdas, dtype=torch.float32, device=out.device)
    idx = torch.tensor(inverse, dtype=torch.long, device=out.device)
    own = (lam * row_loss(out, targets)).mean()
    partner = ((1 - lam[idx]) * row_loss(out[idx], targets)).mean()
    return own, partner
