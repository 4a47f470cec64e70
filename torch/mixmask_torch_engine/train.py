"""The training loop (lib/train/trainer.ts) on PyTorch DistributedDataParallel.

    torchrun --nproc-per-node N -m mixmask_torch_engine --run-dir DIR [--resume] [--max-steps n]

reads DIR/config.json (a RunConfig, as `npm run train` writes it) and writes what our trainer
writes: log.jsonl (one record per step and per epoch, lib/train/log.ts) and
checkpoint.safetensors (our names and layouts, written atomically by rank 0). config.batchSize
is the global batch: each of the W processes takes batchSize / W images of every step.
"""
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dnn
from torch import nn

from . import checkpoint as ck
from .data import RunSampler, TwoViews, load_train, make_recipe, training_indices
from .frameworks import make_framework
from .knn import knn_monitor, monitor_sets
from .masks import make_views
from .rng import Rng, stream_seed

CHECKPOINT_FILE = "checkpoint.safetensors"


class RankFailure(RuntimeError):
    pass


def learning_rate(base, schedule, epoch, epochs):
    """lib/optim/schedule.ts learningRate."""
    kind = schedule["kind"]
    warmup = 0 if kind == "constant" else schedule.get("warmupEpochs", 0) or 0
    if warmup > 0 and epoch < warmup:
        return base * (epoch + 1e-9) / warmup
    if kind == "constant":
        return base
    if kind == "cosine":
        progress = min(1, (epoch - warmup) / max(1e-9, epochs - warmup))
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if kind == "step":
        f = 1.0
        for m in schedule["milestones"]:
            if epoch >= m:
                f *= schedule.get("gamma", 0.1)
        return base * f
    raise ValueError(f"schedule.kind must be constant, cosine or step, got {kind!r}")


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch across ranks, for
    every backend (torch.nn.SyncBatchNorm needs CUDA; gloo on CPU goes through this). Gradients
    flow through the all-reduces (torch.distributed.nn), as in SyncBatchNorm."""

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"SyncBatchNorm: expected 2D or 4D input, got {x.dim()}D")

    def forward(self, x):
        w = dist.get_world_size() if dist.is_initialized() else 1
        if not self.training or w == 1:
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        shape = [1, -1] if x.dim() == 2 else [1, -1, 1, 1]
        count = x.numel() // x.shape[1] * w
        mean = dnn.all_reduce(x.sum(dims)) / count
        var = dnn.all_reduce(((x - mean.reshape(shape)) ** 2).sum(dims)) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.mul_(1 - self.momentum).add_(mean.detach(), alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(var.detach() * count / max(1, count - 1), alpha=self.momentum)
        y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def convert_sync_bn(module, cuda):
    """Every BatchNorm of `module` synchronised (torch's SyncBatchNorm on CUDA, ours otherwise)."""
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        out.load_state_dict(module.state_dict())
        if module.affine:
            out.weight.requires_grad_(module.weight.requires_grad)
            out.bias.requires_grad_(module.bias.requires_grad)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_bn(child, cuda))
    return out


def sync_framework_bn(fw, cuda):
    """SyncBatchNorm for the online network and BYOL's target; MoCo's key encoder keeps its
    per-rank BatchNorm, which its cross-rank shuffle is there for."""
    for name in ("backbone", "projector", "predictor"):
        if hasattr(fw, name):
            setattr(fw, name, convert_sync_bn(getattr(fw, name), cuda))
    if fw.name == "byol":
        fw.target = convert_sync_bn(fw.target, cuda)


def _append(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record, separators=(",", ":")) + "\n")


def _read_log(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                continue  # a torn last line
            raise ValueError(f"{path}: line {i + 1} is not JSON")
    return out


class Sums:
    def __init__(self):
        self.n, self.values = 0, {}

    def add(self, r):
        self.n += 1
        for k in ("loss", "lambda", "lr", "imgPerSec", "embeddingStd"):
            if r.get(k) is not None:
                self.values[k] = self.values.get(k, 0) + r[k]
        for k, v in (r.get("terms") or {}).items():
            self.values["terms." + k] = self.values.get("terms." + k, 0) + v

    def means(self):
        out, terms = {}, {}
        for k, v in self.values.items():
            if k.startswith("terms."):
                terms[k[6:]] = v / self.n
            else:
                out[k] = v / self.n
        return {**out, "terms": terms}


def run(args):
    run_dir = args.run_dir
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{cfg_path} does not exist; `npm run train -- --engine torch …` writes it")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if args.epochs:
        cfg["epochs"] = args.epochs

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cuda = torch.cuda.is_available() and not args.cpu
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    ckpt_path = os.path.join(run_dir, CHECKPOINT_FILE)
    log_path = os.path.join(run_dir, "log.jsonl")

    torch.manual_seed(cfg["seed"])  # torchvision's initialisation; DDP then copies rank 0's weights everywhere
    fw = make_framework(cfg)
    opt_cfg, schedule = cfg["optimizer"], cfg["schedule"]
    fixed_modules = set(schedule.get("fixedLrModules") or [])
    named = fw.named_trainable()
    owners = {n.split(".")[0] for n, _ in named}
    for m in fixed_modules:
        if m not in owners:
            raise ValueError(f"schedule.fixedLrModules: '{m}' is not a trainable module here; expected one of {', '.join(sorted(owners))}")
    groups = [
        {"params": [p for n, p in named if n.split(".")[0] not in fixed_modules], "fixed": False},
        {"params": [p for n, p in named if n.split(".")[0] in fixed_modules], "fixed": True},
    ]
    groups = [g for g in groups if g["params"]]
    base_lr = opt_cfg["lr"]
    if opt_cfg["kind"] == "sgd":
        opt = torch.optim.SGD(groups, lr=base_lr, momentum=opt_cfg.get("momentum", 0.9), weight_decay=opt_cfg.get("weightDecay", 0), nesterov=bool(opt_cfg.get("nesterov", False)))
    elif opt_cfg["kind"] == "adam":
        opt = torch.optim.Adam(groups, lr=base_lr, betas=(opt_cfg.get("beta1", 0.9), opt_cfg.get("beta2", 0.999)), eps=opt_cfg.get("eps", 1e-8), weight_decay=opt_cfg.get("weightDecay", 0))
    else:
        raise ValueError(f"optimizer.kind must be 'sgd' or 'adam', got {opt_cfg['kind']!r}")

    epoch = step_in_epoch = global_step = 0
    sums = Sums()
    if args.resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"cannot resume: {ckpt_path} does not exist")
        tensors, meta = ck.read(ckpt_path)
        saved = meta.get("config", {})
        for key in cfg:
            if key == "epochs":
                continue
            if json.dumps(saved.get(key), sort_keys=True) != json.dumps(cfg[key], sort_keys=True):
                raise ValueError(f"{ckpt_path}: the checkpoint was trained with {key} = {json.dumps(saved.get(key))}, this run asks for {json.dumps(cfg[key])}")
        ck.load_framework_state(fw, tensors, ckpt_path)
        ck.load_optimizer_state(opt, named, opt_cfg["kind"], tensors, meta.get("optimizerScalars") or {}, ckpt_path)
        fw.load_scalars(meta.get("frameworkScalars") or {})
        epoch, global_step, step_in_epoch = meta["epoch"], meta["step"], int(meta.get("stepInEpoch", 0))
        if rank == 0:
            kept = [r for r in _read_log(log_path) if r["step"] <= global_step]
            tmp = f"{log_path}.tmp-{os.getpid()}"
            with open(tmp, "w") as f:
                f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept))
            os.replace(tmp, log_path)
        for r in _read_log(log_path):
            if r["type"] == "step" and r["epoch"] == epoch and r["step"] <= global_step:
                sums.add(r)
    else:
        if os.path.exists(ckpt_path):
            raise FileExistsError(f"{run_dir} already holds a run ({CHECKPOINT_FILE}); resume it or choose another directory")
        if rank == 0:
            open(log_path, "w").close()

    fw.to(device)
    if args.sync_bn and distributed:
        sync_framework_bn(fw, cuda)
    model = nn.parallel.DistributedDataParallel(fw, device_ids=[local_rank] if cuda else None) if distributed else fw
    scaler = torch.cuda.amp.GradScaler() if args.amp and cuda else None

    base = load_train(cfg["dataset"], args.data_dir)
    indices = training_indices(cfg, base.labels.tolist())
    sampler = RunSampler(indices, cfg["batchSize"], cfg["seed"], world, rank)
    recipe = make_recipe(cfg["recipe"], cfg["imageSize"], cfg.get("minCropScale"))
    views_ds = TwoViews(base, recipe, cfg["imageSize"], cfg["seed"])
    steps_per_epoch = sampler.steps
    total_steps = cfg["epochs"] * steps_per_epoch
    knn_every = cfg.get("knn", {}).get("every", 0) if not args.no_knn else 0
    monitor = monitor_sets(cfg, base, args.data_dir) if knn_every > 0 and rank == 0 else None
    fail_at = os.environ.get("MIXMASK_TORCH_FAIL_AT")  # test hook: "rank:step" raises there

    def save():
        if rank == 0:
            state = {**ck.framework_state(fw)}
            slots, scalars = ck.optimizer_state(opt, named, opt_cfg["kind"])
            state.update(slots)
            ck.write(ckpt_path, state, {
                "backbone": cfg["backbone"], "epoch": epoch, "step": global_step, "stepInEpoch": step_in_epoch,
                "config": cfg, "normalize": None, "frameworkScalars": fw.scalars(), "optimizerScalars": scalars,
                "engine": {"name": "torch", "torch": torch.__version__, "processes": world, "syncBn": bool(args.sync_bn and distributed)},
            })
        if distributed:
            dist.barrier()

    steps_this_call = 0
    t0 = time.time()
    last_loss = float("nan")
    while epoch < cfg["epochs"]:
        sampler.set_epoch(epoch, step_in_epoch)
        loader = torch.utils.data.DataLoader(views_ds, batch_size=sampler.local, sampler=sampler, num_workers=args.workers,
                                             persistent_workers=False, pin_memory=cuda)
        for v1, v2 in loader:
            t_step = time.time()
            x1, x2 = v1.to(device, non_blocking=True), v2.to(device, non_blocking=True)
            lr = learning_rate(base_lr, schedule, epoch + step_in_epoch / steps_per_epoch, cfg["epochs"])
            for g in opt.param_groups:
                g["lr"] = base_lr if g["fixed"] else lr
            rng = Rng(stream_seed(cfg["seed"], epoch, step_in_epoch, 2))
            views = make_views(x1, cfg["view"], rng)
            with (torch.autocast("cuda") if scaler else contextlib.nullcontext()):
                targets = fw.compute_targets(x1, x2, rng)
                total, terms, emb_std = model(x1, x2, views, targets)
            if fail_at and fail_at == f"{rank}:{global_step}":
                raise RuntimeError(f"injected failure (MIXMASK_TORCH_FAIL_AT={fail_at})")
            names = list(terms)
            lam = sum(v.lam for v in views) / len(views) if views else 0.0
            stats = torch.stack([total.detach().float(), *[terms[k].detach().float() for k in names], emb_std.float(), torch.tensor(lam, device=device)])
            if distributed:
                dist.all_reduce(stats)
                stats /= world
            vals = stats.tolist()
            loss = vals[0]
            if not math.isfinite(loss):
                last = f"; the last good checkpoint is {ckpt_path}" if os.path.exists(ckpt_path) else ""
                raise FloatingPointError(f"training stopped: the loss became {loss} at epoch {epoch + 1}, step {step_in_epoch + 1} (lr {lr}); lower the learning rate or check the data{last}")
            opt.zero_grad(set_to_none=True)
            if scaler:
                scaler.scale(total).backward()
                scaler.step(opt)
                scaler.update()
            else:
                total.backward()
                opt.step()
            fw.after_step(targets, global_step, total_steps)
            step_in_epoch += 1
            global_step += 1
            steps_this_call += 1
            last_loss = loss
            record = {"type": "step", "epoch": epoch, "step": global_step, "loss": loss,
                      "terms": {k: vals[1 + i] for i, k in enumerate(names)}, "lambda": vals[-1] if views else None,
                      "lr": lr, "imgPerSec": cfg["batchSize"] / max(1e-3, time.time() - t_step), "embeddingStd": vals[-2]}
            sums.add(record)
            if rank == 0:
                _append(log_path, record)
                if args.progress and (global_step % args.progress == 0):
                    print(f"epoch {epoch + 1}/{cfg['epochs']} step {step_in_epoch}/{steps_per_epoch} loss {loss:.4f} lr {lr:.4g}", file=sys.stderr, flush=True)
            if args.max_steps and steps_this_call >= args.max_steps:
                save()
                return {"status": "stopped", "epochsDone": epoch, "step": global_step, "lastLoss": last_loss, "seconds": time.time() - t0, "checkpoint": ckpt_path}
            if step_in_epoch >= steps_per_epoch:
                break
        record = {"type": "epoch", "epoch": epoch, "step": global_step, **sums.means()}
        sums = Sums()
        epoch += 1
        if monitor is not None and (epoch % knn_every == 0 or epoch == cfg["epochs"]):
            record["knnTop1"], record["knnTop5"] = knn_monitor(fw.backbone, cfg, monitor, device)
        if rank == 0:
            _append(log_path, record)
        step_in_epoch = 0
        save()
    return {"status": "completed", "epochsDone": epoch, "step": global_step, "lastLoss": last_loss, "seconds": time.time() - t0, "checkpoint": ckpt_path}
