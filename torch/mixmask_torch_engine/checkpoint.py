"""Checkpoints in our safetensors layout (lib/train/checkpoint.ts): the same tensor names as the
TypeScript trainer writes, in its layouts (convolutions HWIO, linear weights [in, out],
BatchNorm step counters int32, lib/interop/layout.ts), the run state as JSON metadata."""
import json
import os

import torch

from .models import mixmask_torch

FORMAT = "mixmask-ts-checkpoint/1"


def _is_matrix_weight(name, t):
    # Rank-2 weights are Linear layers' ([out, in] here, [in, out] ours); the MoCo queue
    # ([K, dim]) keeps its layout. Optimiser slots (optim.<slot>.<param>) follow their parameter.
    return t.dim() == 2 and name.endswith("weight")


def to_ours(t, name):
    """A PyTorch tensor named `name` in our layout and dtype."""
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return t.to(torch.int32)
    t = t.float()
    if t.dim() == 4:
        return t.permute(2, 3, 1, 0).contiguous()
    if _is_matrix_weight(name, t):
        return t.t().contiguous()
    return t.contiguous()


def from_ours(t, like, name):
    """One of our tensors named `name` in the layout and dtype of `like` (a PyTorch tensor)."""
    if t.dim() == 4:
        t = t.permute(3, 2, 0, 1)
    elif _is_matrix_weight(name, t):
        t = t.t()
    t = t.to(like.dtype).contiguous()
    if tuple(t.shape) != tuple(like.shape):
        raise ValueError(f"shape {list(t.shape)} does not fit {list(like.shape)}")
    return t


def read(path):
    tensors, raw = mixmask_torch.read_safetensors(path)
    if raw.get("format") != FORMAT:
        raise ValueError(f'{path}: not a MixMask checkpoint (metadata "format" is {raw.get("format")!r}, expected "{FORMAT}")')
    meta = {}
    for k, v in raw.items():
        if k == "format":
            continue
        try:
            meta[k] = json.loads(v)
        except ValueError:
            raise ValueError(f'{path}: metadata field "{k}" is not valid JSON')
    for f in ("backbone", "epoch", "step"):
        if f not in meta:
            raise ValueError(f'{path}: metadata has no "{f}" field')
    return tensors, meta


def write(path, named, meta):
    """Writes {name: tensor (PyTorch layout)} in our layout, atomically (temp file + rename)."""
    metadata = {"format": FORMAT}
    for k, v in meta.items():
        metadata[k] = json.dumps(v, separators=(",", ":"))
    mixmask_torch.write_safetensors(path, {n: to_ours(t, n) for n, t in named.items()}, metadata)


def framework_state(fw):
    """Every tensor of a framework under our names (parameters and buffers, queue included)."""
    return dict(fw.state_dict())


def load_framework_state(fw, tensors, source, prefix=""):
    """Assigns `prefix + name` tensors to the framework's state; validated before anything changes."""
    state = fw.state_dict()
    pending = []
    for name, like in state.items():
        key = prefix + name
        if key not in tensors:
            raise ValueError(f'{source}: missing tensor "{key}"')
        try:
            pending.append((like, from_ours(tensors[key], like, key)))
        except ValueError as e:
            raise ValueError(f'{source}: tensor "{key}": {e}')
    with torch.no_grad():
        for like, t in pending:
            like.copy_(t)


def optimizer_state(opt, named_params, kind):
    """Optimiser slots under our names: optim.velocity.<p> (SGD), optim.m.<p> / optim.v.<p> (Adam)."""
    out, t = {}, 0
    for name, p in named_params:
        st = opt.state.get(p, {})
        if kind == "sgd":
            buf = st.get("momentum_buffer")
            out[f"optim.velocity.{name}"] = buf if buf is not None else torch.zeros_like(p)
        else:
            out[f"optim.m.{name}"] = st.get("exp_avg", torch.zeros_like(p))
            out[f"optim.v.{name}"] = st.get("exp_avg_sq", torch.zeros_like(p))
            if "step" in st:
                t = int(st["step"])
    return out, ({"t": t} if kind == "adam" else {})


def load_optimizer_state(opt, named_params, kind, tensors, scalars, source):
    for name, p in named_params:
        if kind == "sgd":
            key = f"optim.velocity.{name}"
            if key not in tensors:
                raise ValueError(f'{source}: missing tensor "{key}"')
            opt.state[p]["momentum_buffer"] = from_ours(tensors[key], p.detach(), key).to(p.device)
        else:
            st = opt.state[p]
            for slot, key in (("exp_avg", f"optim.m.{name}"), ("exp_avg_sq", f"optim.v.{name}")):
                if key not in tensors:
                    raise ValueError(f'{source}: missing tensor "{key}"')
                st[slot] = from_ours(tensors[key], p.detach(), key).to(p.device)
            st["step"] = torch.tensor(float(scalars.get("t", 0)))
