"""MixMask on PyTorch: the run config (RunConfig) of the TypeScript toolkit trained with
DistributedDataParallel; logs and checkpoints in the toolkit's formats (docs/torch-engine.md)."""
