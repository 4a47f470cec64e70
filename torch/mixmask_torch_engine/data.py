"""Data for the engine: the datasets of lib/data/named.ts read with torchvision (CIFAR, image
folders) or from their IDX files (Fashion-MNIST), a DistributedSampler that deals out our epoch
order (the same seeded subset and shuffle as lib/train/trainer.ts), and the augmentation
recipes of lib/data/recipes.ts written with torchvision's functional transforms.

Augmentations are drawn per sample from a torch.Generator seeded by (seed, epoch, position in
the epoch), so they do not depend on ranks or loader workers and a resumed run repeats them.
They are the same recipes as ours, not the same draws (docs/torch-engine.md)."""
import gzip
import math
import os
import struct

import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset, DistributedSampler

from .rng import Rng, stream_seed

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _datasets_dir():
    env = os.environ.get("MIXMASK_DATA_DIR", "").strip()
    return os.path.abspath(env) if env else os.path.join(_repo_root(), "data", "datasets")


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    return torch.frombuffer(bytearray(raw[4 + 4 * nd:]), dtype=torch.uint8).reshape(dims)


def _find(dirs, base):
    for d in dirs:
        for name in (base + ".gz", base):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return p
    raise FileNotFoundError(f"dataset file {base}.gz (or {base}) not found in {', '.join(dirs)}")


class TensorImages(Dataset):
    """uint8 images [N, C, H, W] and labels, as the samplers and the loader want them."""

    def __init__(self, images, labels, name):
        self.images, self.labels, self.name = images, labels, name

    def __len__(self):
        return self.images.shape[0]

    def image(self, i):
        return self.images[i]


class FolderImages(Dataset):
    def __init__(self, root, name):
        import torchvision
        self.folder = torchvision.datasets.ImageFolder(root)
        self.labels = torch.tensor(self.folder.targets)
        self.name = name

    def __len__(self):
        return len(self.folder)

    def image(self, i):
        img, _ = self.folder[i]
        return TF.pil_to_tensor(img.convert("RGB"))


def load_train(name, data_dir=None, split="train"):
    """The training (or test: split="test") split of a dataset of lib/data/named.ts."""
    root = data_dir or _datasets_dir()
    train = split == "train"
    if name == "fashion-mnist":
        dirs = [data_dir] if data_dir else [os.path.join(root, "fashion-mnist"), *FASHION_MNIST_DIRS]
        prefix = "train" if train else "t10k"
        x = _read_idx(_find(dirs, f"{prefix}-images-idx3-ubyte"))
        y = _read_idx(_find(dirs, f"{prefix}-labels-idx1-ubyte")).long()
        return TensorImages(x[:, None], y, name)
    if name in ("cifar10", "cifar100"):
        import torchvision
        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        ds = cls(os.path.join(root, name), train=train, download=False)
        return TensorImages(torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets), name)
    if name == "tiny-imagenet":
        return FolderImages(os.path.join(root, "tiny-imagenet-200", "train" if train else "val"), name)
    if name == "folder":
        if not data_dir:
            raise ValueError("dataset 'folder' needs --data-dir (an ImageFolder root: one sub-folder per class)")
        if not train:
            raise ValueError("dataset 'folder' has no test split: give the run config a validation split or knn.every = 0")
        return FolderImages(data_dir, name)
    raise ValueError(f"the torch engine reads fashion-mnist, cifar10, cifar100, tiny-imagenet and image folders; got dataset {name!r}")


def validation_split(labels, images, seed):
    """The training images left once RunConfig.validation is held out (lib/data/split.ts
    validationSplit: images / classes of every class, each class by its own fork of Rng(seed))."""
    labels = [int(v) for v in labels]
    classes = max(labels) + 1
    if images < classes or images % classes:
        raise ValueError(f"validation.images must be a positive multiple of {classes} (the classes), got {images}")
    per_class = images // classes
    by_class = [[] for _ in range(classes)]
    for i, y in enumerate(labels):
        by_class[y].append(i)
    rng = Rng(seed)
    held = set()
    for c, members in enumerate(by_class):
        r = rng.fork()
        if len(members) < per_class:
            raise ValueError(f"validation.images ({images}) needs {per_class} images of every class; class {c} has {len(members)}")
        perm = r.permutation(len(members))
        held.update(members[perm[j]] for j in range(per_class))
    return [i for i in range(len(labels)) if i not in held], sorted(held)


def training_indices(cfg, labels):
    """The images a run trains on, as lib/train/trainer.ts and lib/experiments/run.ts pick them:
    the training split less the validation images, then the first trainSubset entries of a
    permutation seeded by (seed, -1, -1, 0)."""
    pool = list(range(len(labels)))
    if cfg.get("validation"):
        pool, _ = validation_split(labels, cfg["validation"]["images"], cfg["validation"]["seed"])
    subset = cfg.get("trainSubset")
    n = len(pool) if subset is None else min(subset, len(pool))
    if n == len(pool):
        return pool
    return [pool[i] for i in Rng(stream_seed(cfg["seed"], -1, -1, 0)).permutation(len(pool))[:n]]


class RunSampler(DistributedSampler):
    """Our epoch order dealt out to ranks: global batch s is rows [s·B, (s+1)·B) of the epoch's
    permutation (lib/train/trainer.ts), and rank r takes its slice [r·B/W, (r+1)·B/W). Yields
    (dataset index, epoch, position in the epoch) for the per-sample augmentation seed."""

    def __init__(self, indices, batch_size, seed, num_replicas=1, rank=0):
        self.indices, self.global_batch, self.seed = indices, batch_size, seed
        self.num_replicas, self.rank, self.epoch, self.start_step = num_replicas, rank, 0, 0
        if batch_size % num_replicas:
            raise ValueError(f"batchSize {batch_size} is not divisible by the {num_replicas} processes")
        self.local = batch_size // num_replicas
        self.steps = len(indices) // batch_size
        if self.steps < 1:
            raise ValueError(f"{len(indices)} training images are fewer than one batch of {batch_size}")

    def set_epoch(self, epoch, start_step=0):
        self.epoch, self.start_step = epoch, start_step

    def __len__(self):
        return (self.steps - self.start_step) * self.local

    def __iter__(self):
        perm = Rng(stream_seed(self.seed, self.epoch, -1, 1)).permutation(len(self.indices))
        for s in range(self.start_step, self.steps):
            for k in range(self.local):
                pos = s * self.global_batch + self.rank * self.local + k
                yield (self.indices[perm[pos]], self.epoch, pos)


RATIO = (3 / 4, 4 / 3)


def make_recipe(name, size, min_crop_scale=None):
    """Two view specs (lib/data/recipes.ts makeRecipe)."""
    blur_on = size > 32
    kernel = max(3, int(math.floor(0.1 * size)) | 1)
    blur = lambda p: {"prob": p, "sigma": (0.1, 2.0), "kernel": kernel} if blur_on and p > 0 else None  # noqa: E731
    lo_min = min_crop_scale or 0
    crop = lambda lo: (max(lo, lo_min), 1.0)  # noqa: E731
    jit = lambda b, c, s, h, p: {"b": b, "c": c, "s": s, "h": h, "prob": p}  # noqa: E731
    if name == "mocov1":
        v = {"crop": crop(0.2), "flip": 0.5, "jitter": jit(0.4, 0.4, 0.4, 0.4, 1), "gray": 0.2, "grayFirst": True, "blur": None, "solarize": 0}
        return [v, v]
    if name in ("mocov2", "simsiam"):
        v = {"crop": crop(0.2), "flip": 0.5, "jitter": jit(0.4, 0.4, 0.4, 0.1, 0.8), "gray": 0.2, "blur": blur(0.5), "solarize": 0}
        return [v, v]
    if name == "simclr":
        s = 0.5 if size <= 64 else 1
        v = {"crop": crop(0.08), "flip": 0.5, "jitter": jit(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, 0.8), "gray": 0.2, "blur": blur(0.5), "solarize": 0}
        return [v, v]
    if name == "byol":
        base = {"crop": crop(0.08), "flip": 0.5, "jitter": jit(0.4, 0.4, 0.2, 0.1, 0.8), "gray": 0.2}
        return [{**base, "blur": blur(1.0), "solarize": 0}, {**base, "blur": blur(0.1), "solarize": 0.2}]
    raise ValueError(f"unknown recipe {name!r}; expected mocov1, mocov2, simclr, byol or simsiam")


def _u(g, lo=0.0, hi=1.0):
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _crop_box(g, h, w, scale, ratio):
    """torchvision RandomResizedCrop.get_params, drawn from `g`."""
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _u(g, *scale)
        ar = math.exp(_u(g, *log_r))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            i = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            j = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            return i, j, ch, cw
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def augment(img, spec, size, g):
    """One view of one image (float [3, H, W] in [0, 1]) in torchvision's order."""
    i, j, h, w = _crop_box(g, img.shape[1], img.shape[2], spec["crop"], RATIO)
    x = TF.resized_crop(img, i, j, h, w, [size, size], antialias=True)
    if _u(g) < spec["flip"]:
        x = TF.hflip(x)
    gray = _u(g) < spec["gray"]
    if gray and spec.get("grayFirst"):
        x = TF.rgb_to_grayscale(x, 3)
    jt = spec["jitter"]
    if jt and _u(g) < jt["prob"]:
        for k in torch.randperm(4, generator=g).tolist():
            if k == 0 and jt["b"] > 0:
                x = TF.adjust_brightness(x, _u(g, max(0, 1 - jt["b"]), 1 + jt["b"]))
            elif k == 1 and jt["c"] > 0:
                x = TF.adjust_contrast(x, _u(g, max(0, 1 - jt["c"]), 1 + jt["c"]))
            elif k == 2 and jt["s"] > 0:
                x = TF.adjust_saturation(x, _u(g, max(0, 1 - jt["s"]), 1 + jt["s"]))
            elif k == 3 and jt["h"] > 0:
                x = TF.adjust_hue(x, _u(g, -jt["h"], jt["h"]))
    if gray and not spec.get("grayFirst"):
        x = TF.rgb_to_grayscale(x, 3)
    if spec["blur"] and _u(g) < spec["blur"]["prob"]:
        s = _u(g, *spec["blur"]["sigma"])
        x = TF.gaussian_blur(x, [spec["blur"]["kernel"]] * 2, [s, s])
    if spec["solarize"] and _u(g) < spec["solarize"]:
        x = TF.solarize(x, 0.5)
    return x.clamp(0, 1)


class TwoViews(Dataset):
    """Maps (index, epoch, position) to the two augmented views of that image."""

    def __init__(self, base, recipe, size, seed):
        self.base, self.recipe, self.size, self.seed = base, recipe, size, seed

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        index, epoch, pos = key
        img = self.base.image(index).float() / 255
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        g = torch.Generator().manual_seed(stream_seed(self.seed, epoch, pos, 3))
        return augment(img, self.recipe[0], self.size, g), augment(img, self.recipe[1], self.size, g)
