"""python -m mixmask_torch_engine --run-dir DIR [...]: see train.py; under torchrun one process per rank."""
import argparse
import json
import os
import sys
import traceback


def main(argv=None):
    p = argparse.ArgumentParser(prog="mixmask_torch_engine", description="MixMask pretraining on PyTorch (DDP through torchrun)")
    p.add_argument("--run-dir", required=True, help="folder with config.json; log.jsonl and checkpoint.safetensors go there")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--max-steps", type=int, default=0, help="stop (with a checkpoint) after n steps of this call")
    p.add_argument("--epochs", type=int, default=0, help="override config.epochs (extend a run)")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: data/datasets, Debian's Fashion-MNIST)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (MoCo's key encoder keeps shuffle-BN)")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA (ignored on CPU)")
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is available")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes per rank")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (default: torch's)")
    p.add_argument("--no-knn", action="store_true", help="skip the kNN monitor of config.knn (rank 0, between epochs)")
    p.add_argument("--progress", type=int, default=0, help="print a progress line every n steps (rank 0)")
    args = p.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from .train import run
    rank = os.environ.get("RANK", "0")
    try:
        summary = run(args)
    except Exception as e:  # noqa: BLE001 — every failure ends the job with one clear line per rank
        traceback.print_exc()
        print(f"torch engine: rank {rank} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    if rank == "0":
        print(json.dumps({**summary, "runDir": args.run_dir, "engine": "torch"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
