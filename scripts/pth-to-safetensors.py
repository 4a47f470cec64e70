#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pth / .pth.tar / .pt) to .safetensors, with PyTorch only.

    python3 scripts/pth-to-safetensors.py checkpoint_0199.pth.tar moco.safetensors

Finds the state dict inside the saved object (the object itself, or its "state_dict",
"model", "model_state_dict", "net" or "network" entry; --select picks another), keeps every
tensor under its key (so MoCo's "module.encoder_q." and "module.encoder_k." both survive; the
importer picks the online encoder), writes floats as float32 and integers as int64. --prefix P
keeps only keys starting with P and strips it (e.g. --prefix module.encoder_q.).

The safetensors file is written by a small pure-Python writer, so the `safetensors` package
is not needed. By default the pickle is read with torch.load(weights_only=True), which refuses
to run code stored in the file; --trust-pickle lifts that for checkpoints you trust that also
pickle Python objects (an argparse Namespace, say).
"""
import argparse
import json
import os
import struct
import sys

CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")


def find_state_dict(obj, select, torch):
    """Returns (state dict, the entry it came from)."""
    if select:
        if not isinstance(obj, dict) or select not in obj:
            keys = list(obj.keys()) if isinstance(obj, dict) else type(obj).__name__
            sys.exit(f"error: the checkpoint has no entry {select!r} (top level: {keys})")
        obj, where = obj[select], select
    else:
        where = ""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), where or "module.state_dict()"
    if not isinstance(obj, dict):
        sys.exit(f"error: expected a dict of tensors, found {type(obj).__name__}")
    if any(torch.is_tensor(v) for v in obj.values()):
        return obj, where or "(top level)"
    for key in CONTAINER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, torch.nn.Module):
            return inner.state_dict(), key
        if isinstance(inner, dict) and any(torch.is_tensor(v) for v in inner.values()):
            return inner, key
    sys.exit(f"error: no state dict found (top-level entries: {list(obj.keys())}); pass --select ENTRY")


def to_storable(name, t, torch):
    """float32 for floating tensors, int64 for integer and bool ones; None for anything else."""
    if t.is_floating_point():
        return t.detach().to(torch.float32).contiguous()
    if t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool):
        return t.detach().to(torch.int64).contiguous()
    print(f"warning: skipping {name} (dtype {t.dtype})", file=sys.stderr)
    return None


def write_safetensors(path, tensors, metadata):
    """safetensors: u64 little-endian header size, JSON header, raw little-endian bytes."""
    dtypes = {"torch.float32": "F32", "torch.int64": "I64", "torch.int32": "I32"}
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        arr = t.cpu().numpy()
        if sys.byteorder != "little":
            arr = arr.byteswap()
        blob = arr.tobytes()
        header[name] = {"dtype": dtypes[str(t.dtype)], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)  # keeps the data 8-byte aligned
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for blob in blobs:
                f.write(blob)
        os.replace(tmp, path)  # atomic: readers never see a half-written file
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help=".pth / .pth.tar / .pt file written by torch.save")
    p.add_argument("output", help=".safetensors file to write")
    p.add_argument("--select", help="entry of the saved dict that holds the state dict")
    p.add_argument("--prefix", help="keep only keys starting with this prefix, and strip it")
    p.add_argument("--trust-pickle", action="store_true", help="allow arbitrary unpickling (only for files you trust)")
    args = p.parse_args(argv)

    import torch

    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=not args.trust_pickle)
    except TypeError:  # PyTorch < 1.13 has no weights_only
        if not args.trust_pickle:
            sys.exit("error: this PyTorch cannot load safely (no weights_only); rerun with --trust-pickle if you trust the file")
        obj = torch.load(args.input, map_location="cpu")
    except Exception as e:  # noqa: BLE001 — unpickling errors come in many types
        hint = "" if args.trust_pickle else " (if the file stores Python objects and you trust it, rerun with --trust-pickle)"
        sys.exit(f"error: cannot load {args.input}: {e}{hint}")

    state, where = find_state_dict(obj, args.select, torch)
    tensors = {}
    for name, t in state.items():
        if not torch.is_tensor(t):
            continue
        if args.prefix is not None:
            if not name.startswith(args.prefix):
                continue
            name = name[len(args.prefix):]
        stored = to_storable(name, t, torch)
        if stored is not None:
            tensors[name] = stored
    if not tensors:
        sys.exit(f"error: no tensors found in {where}" + (f" under prefix {args.prefix!r}" if args.prefix else ""))

    meta = {"format": "pt", "mixmask.converted_from": os.path.basename(args.input), "mixmask.container": where}
    if isinstance(obj, dict):
        if isinstance(obj.get("epoch"), int):
            meta["mixmask.epoch"] = str(obj["epoch"])
        if isinstance(obj.get("arch"), str):
            meta["mixmask.source_arch"] = obj["arch"]
    write_safetensors(args.output, tensors, meta)
    print(f"{args.input} [{where}] -> {args.output}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
