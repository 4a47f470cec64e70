"""The view methods of docs/method.md in PyTorch: grid masks (lib/masks/grid.ts, ported line by
line so that one seed gives the same grids), mixing with partners, erase and Un-Mix
(lib/masks/mix.ts, lib/masks/views.ts). Images are NCHW here (ours are NHWC).
"""
import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from .rng import Rng

METHODS = ("none", "mixmask", "erase", "unmix", "both")
MAX_REDRAWS = 1000


def _js_round(x):
    """Math.round: halves round up (Python's round() rounds them to even)."""
    return math.floor(x + 0.5)


def check_grid_size(g, what="gridSize"):
    if not isinstance(g, int) or isinstance(g, bool) or g < 1:
        raise ValueError(f"masks: {what} must be an integer ≥ 1, got {g!r}")


def check_ratio(r, what="ratio"):
    if not isinstance(r, (int, float)) or isinstance(r, bool) or not math.isfinite(r) or r < 0 or r > 1:
        raise ValueError(f"masks: {what} must be a number in [0, 1], got {r!r}")


@dataclass
class Grid:
    size: int
    keep: List[int]  # g·g cells, row-major; 1 = keeps own content, 0 = filled from the partner
    filled: int
    target: float
    type: str


def _grid(size, keep, target, type_):
    return Grid(size, keep, sum(1 for v in keep if v == 0), target, type_)


def block_grid(g, ratio, rng: Rng, min_area=4, min_aspect=0.3, tries=10):
    """BEiT-style block mask (docs/method.md#block-masks), the same draws as blockGrid."""
    check_grid_size(g)
    check_ratio(ratio)
    log_lo = math.log(min_aspect)
    log_hi = math.log(1 / min_aspect)
    target = math.floor(ratio * g * g + 1e-9)
    filled = [0] * (g * g)
    placed = 0
    while placed < target:
        room = target - placed
        added = 0
        t = 0
        while t < tries and added == 0:
            t += 1
            area = rng.uniform(min_area, room)
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            h = _js_round(math.sqrt(area * aspect))
            w = _js_round(math.sqrt(area / aspect))
            if h >= g or w >= g:
                continue
            top = rng.int(g - h + 1)
            left = rng.int(g - w + 1)
            already = sum(filled[i * g + j] for i in range(top, top + h) for j in range(left, left + w))
            fresh = h * w - already
            if 0 < fresh <= room:
                for i in range(top, top + h):
                    for j in range(left, left + w):
                        filled[i * g + j] = 1
                added = fresh
        if added == 0:
            break
        placed += added
    return _grid(g, [1 - f for f in filled], target, "block")


def discrete_grid(g, ratio, rng: Rng):
    """Discrete mask (docs/method.md#discrete-masks), the same draws as discreteGrid."""
    check_grid_size(g)
    check_ratio(ratio)
    n = g * g
    if ratio == 0 or ratio == 1:
        return _grid(g, [1 if ratio == 0 else 0] * n, ratio * n, "discrete")
    keep = [1] * n
    attempt = 0
    while True:
        filled = 0
        for i in range(n):
            f = rng.next() < ratio
            keep[i] = 0 if f else 1
            filled += f
        if (0 < filled < n) or n == 1:
            break
        if attempt >= MAX_REDRAWS:
            c = rng.int(n)
            keep[c] = 1 - keep[c]
            break
        attempt += 1
    return _grid(g, keep, ratio * n, "discrete")


def make_grid(type_, g, ratio, rng, block=None):
    if type_ == "block":
        b = block or {}
        return block_grid(g, ratio, rng, b.get("minArea", 4), b.get("minAspect", 0.3), b.get("triesPerRound", 10))
    if type_ == "discrete":
        return discrete_grid(g, ratio, rng)
    raise ValueError(f"masks: maskType must be 'block' or 'discrete', got {type_!r}")


def make_grids(type_, g, ratio, rng, count, per_sample, block=None):
    n = count if per_sample else 1
    return [make_grid(type_, g, ratio, rng, block) for _ in range(n)]


def cell_index(size, g):
    return [((2 * y + 1) * g) // (2 * size) for y in range(size)]


def cell_spans(size, g):
    spans = [0] * g
    for c in cell_index(size, g):
        spans[c] += 1
    return spans


def check_image_size(h, w, g):
    for name, v in (("height", h), ("width", w)):
        if v < g:
            raise ValueError(f"masks: image {name} {v} is smaller than gridSize {g}; every grid cell needs at least one pixel")


def pixel_lambda(gr: Grid, h, w):
    """Exact share of pixels that keep their own content after nearest upsampling."""
    check_image_size(h, w, gr.size)
    rows, cols = cell_spans(h, gr.size), cell_spans(w, gr.size)
    kept = 0
    for i in range(gr.size):
        kept += rows[i] * sum(cols[j] for j in range(gr.size) if gr.keep[i * gr.size + j])
    return kept / (h * w)


def count_components(gr: Grid, value=0):
    """4-connected components among the cells with keep == value."""
    g = gr.size
    seen = [False] * (g * g)
    count = 0
    for start in range(g * g):
        if seen[start] or gr.keep[start] != value:
            continue
        count += 1
        seen[start] = True
        stack = [start]
        while stack:
            c = stack.pop()
            i, j = divmod(c, g)
            for nb in (c - g if i > 0 else -1, c + g if i < g - 1 else -1, c - 1 if j > 0 else -1, c + 1 if j < g - 1 else -1):
                if nb >= 0 and not seen[nb] and gr.keep[nb] == value:
                    seen[nb] = True
                    stack.append(nb)
    return count


def upsample_grids(grids, h, w, device=None, dtype=torch.float32):
    """Pixel masks [len(grids), 1, H, W] (1 = own content), nearest by cell_index."""
    g = grids[0].size
    check_image_size(h, w, g)
    cells = torch.tensor([gr.keep for gr in grids], dtype=dtype, device=device).reshape(len(grids), g, g)
    rows = torch.tensor(cell_index(h, g), device=device)
    cols = torch.tensor(cell_index(w, g), device=device)
    return cells[:, rows][:, :, cols].unsqueeze(1)


def flip_index(n):
    return list(range(n - 1, -1, -1))


def inverse_index(partner):
    n = len(partner)
    inv = [-1] * n
    for i, p in enumerate(partner):
        if not (0 <= p < n) or inv[p] != -1:
            raise ValueError(f"masks: partner index must be a permutation of 0..{n - 1}; entry {i} is {p}")
        inv[p] = i
    return inv


def cutmix_box(h, w, lam_u, rng: Rng):
    cut = math.sqrt(1 - lam_u)
    ch, cw = math.floor(h * cut), math.floor(w * cut)
    cy, cx = rng.int(h), rng.int(w)
    clip = lambda v, hi: min(max(v, 0), hi)  # noqa: E731
    y0 = clip(cy - ch // 2, h)
    x0 = clip(cx - cw // 2, w)
    y1 = clip(cy - ch // 2 + ch, h)
    x1 = clip(cx - cw // 2 + cw, w)
    return y0, y1, x0, x1


@dataclass
class View:
    kind: str
    mixed: torch.Tensor
    lambdas: List[float]
    partner: Optional[List[int]]
    inverse: Optional[List[int]]
    asymmetric: bool
    grids: Optional[List[Grid]] = None
    box: Optional[tuple] = None
    lam: float = field(default=0.0)


def resolve_view_spec(spec):
    s = {
        "method": spec.get("method"),
        "maskType": spec.get("maskType", "block"),
        "gridSize": spec.get("gridSize", 8),
        "ratio": spec.get("ratio", 0.5),
        "perSample": spec.get("perSample", False),
        "partner": spec.get("partner", "flip"),
        "unmixProb": spec.get("unmixProb", 0.5),
        "unmixAlpha": spec.get("unmixAlpha", 1),
        "fill": spec.get("fill", 0),
        "block": spec.get("block", {}),
        "asymmetric": spec.get("asymmetric", True),
    }
    if s["method"] not in METHODS:
        raise ValueError(f"masks: method must be one of {', '.join(METHODS)}, got {s['method']!r}")
    if s["maskType"] not in ("block", "discrete"):
        raise ValueError(f"masks: maskType must be 'block' or 'discrete', got {s['maskType']!r}")
    check_grid_size(s["gridSize"])
    check_ratio(s["ratio"])
    check_ratio(s["unmixProb"], "unmixProb")
    if s["partner"] not in ("flip", "permutation"):
        raise ValueError(f"masks: partner must be 'flip' or 'permutation', got {s['partner']!r}")
    if not s["asymmetric"] and s["method"] in ("none", "erase"):
        raise ValueError(f"masks: asymmetric: false switches off the partner term of a mixed view; method '{s['method']}' has no partner")
    return s


def _grid_view(x, s, rng, partner):
    n, _, h, w = x.shape
    check_image_size(h, w, s["gridSize"])
    grids = make_grids(s["maskType"], s["gridSize"], s["ratio"], rng, n, s["perSample"], s["block"])
    per_grid = [pixel_lambda(gr, h, w) for gr in grids]
    lambdas = [per_grid[i if s["perSample"] else 0] for i in range(n)]
    mask = upsample_grids(grids, h, w, x.device, x.dtype)
    if partner is not None:
        mixed = x * mask + x[partner] * (1 - mask)
    else:
        fill = s["fill"]
        f = torch.tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1) if isinstance(fill, list) else fill
        mixed = x * mask + (1 - mask) * f
    return View(
        "mixmask" if partner is not None else "erase", mixed, lambdas, partner,
        inverse_index(partner) if partner is not None else None, partner is not None and s["asymmetric"],
        grids=grids, lam=sum(per_grid) / len(per_grid),
    )


def unmix(x, rng: Rng, prob=0.5, alpha=1.0, asymmetric=True):
    """Un-Mix with the flip partner; draws λu, the coin, then the CutMix centre (views.ts)."""
    n, _, h, w = x.shape
    partner = flip_index(n)
    inverse = inverse_index(partner)
    lam = rng.beta(alpha, alpha)
    if rng.next() < prob:
        mixed = x * lam + x[partner] * (1 - lam)
        return View("unmix-mixup", mixed, [lam] * n, partner, inverse, asymmetric, lam=lam)
    y0, y1, x0, x1 = cutmix_box(h, w, lam, rng)
    lam = 1 - ((y1 - y0) * (x1 - x0)) / (h * w)
    mask = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
    mask[:, :, y0:y1, x0:x1] = 0
    mixed = x * mask + x[partner] * (1 - mask)
    return View("unmix-cutmix", mixed, [lam] * n, partner, inverse, asymmetric, box=(y0, y1, x0, x1), lam=lam)


def make_views(x, spec, rng: Rng):
    """The extra views of the first-view batch x (NCHW) for spec['method'], drawn from rng in
    the order of lib/masks/views.ts (makeViews)."""
    s = resolve_view_spec(spec)
    n = x.shape[0]
    m = s["method"]
    if m == "none":
        return []
    if m == "mixmask":
        partner = flip_index(n) if s["partner"] == "flip" else rng.permutation(n)
        return [_grid_view(x, s, rng, partner)]
    if m == "erase":
        return [_grid_view(x, s, rng, None)]
    if m == "unmix":
        return [unmix(x, rng, s["unmixProb"], s["unmixAlpha"], s["asymmetric"])]
    u = unmix(x, rng, s["unmixProb"], s["unmixAlpha"], s["asymmetric"])
    return [u, _grid_view(x, s, rng, rng.permutation(n))]
