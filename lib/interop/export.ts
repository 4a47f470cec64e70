import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SafeTensor, writeSafetensorsFile } from '../io/safetensors';
import { ResNet, ResNetConfig } from '../models/resnet';
import { loadCheckpoint, tensorsToSafe } from '../train/checkpoint';
import { resnetStateSpec } from './arch';
import { checkpointHeads, headToTorch, TorchHead } from './heads';
import { toTorchTensor } from './layout';

/**
 * Export to PyTorch: a .safetensors file whose keys and layouts are torchvision's ResNet
 * state_dict without `fc` (conv weights OIHW, BatchNorm counters int64), so that
 * `model.load_state_dict(state, strict=True)` works on a torchvision ResNet whose `fc` is
 * nn.Identity (which has no parameters). Heads, when asked for, go under their own names
 * (`projector.*`, `predictor.*`) as nn.Sequential keys and are described in the metadata;
 * lib/interop/python/mixmask_torch.py builds both from the metadata.
 */

/** Metadata keys of an exported file (all strings, as safetensors requires). */
export const TORCH_META = {
  arch: 'mixmask.arch',
  heads: 'mixmask.heads',
  normalize: 'mixmask.normalize',
  source: 'mixmask.source',
  builder: 'mixmask.torchvision',
} as const;

export interface TorchExportOptions {
  /** Also export the projection / prediction heads of a training checkpoint. */
  heads?: boolean;
  /** Which backbone of a training checkpoint: the online one (default) or the momentum/EMA copy. */
  backbone?: 'online' | 'target';
  /** Extra metadata strings. */
  metadata?: Record<string, string>;
}

export interface TorchExportResult {
  file: string;
  arch: Required<Omit<ResNetConfig, 'seed'>>;
  /** Number of tensors written. */
  tensors: number;
  heads: string[];
}

/** How to build the matching torchvision model, for people reading the file's metadata. */
export function torchvisionRecipe(arch: { depth: number; stem: string; width: number }): string {
  const parts = [`torchvision.models.resnet${arch.depth}()`];
  if (arch.width !== 64) parts.push(`stages rebuilt with base width ${arch.width} (see mixmask_torch.build_resnet)`);
  if (arch.stem === 'cifar') parts.push(`conv1 = nn.Conv2d(3, ${arch.width}, 3, 1, 1, bias=False)`, 'maxpool = nn.Identity()');
  parts.push('fc = nn.Identity()');
  return parts.join('; ');
}

function archOf(config: ResNetConfig): Required<Omit<ResNetConfig, 'seed'>> {
  return { depth: config.depth, stem: config.stem, width: config.width ?? 64 };
}

function baseMetadata(arch: Required<Omit<ResNetConfig, 'seed'>>, heads: Map<string, TorchHead>): Record<string, string> {
  const meta: Record<string, string> = {
    // "pt" is the safetensors convention for PyTorch state dicts (Hugging Face tools read it).
    format: 'pt',
    [TORCH_META.arch]: JSON.stringify(arch),
    [TORCH_META.builder]: torchvisionRecipe(arch),
  };
  if (heads.size > 0) {
    const desc: Record<string, unknown> = {};
    for (const [name, h] of heads) desc[name] = { sequential: h.sequential, modules: h.modules };
    meta[TORCH_META.heads] = JSON.stringify(desc);
  }
  return meta;
}

/**
 * Converts our backbone state (names relative to the backbone, our layout) to torchvision's,
 * checking every tensor against the architecture: errors name the source, the key and the
 * expected shape.
 */
export function backboneToTorch(
  ours: Map<string, SafeTensor>,
  config: ResNetConfig,
  source: string,
  prefix = '',
): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  const spec = resnetStateSpec(config);
  for (const { name, shape, dtype } of spec) {
    const key = prefix + name;
    const t = ours.get(key);
    if (!t) throw new Error(`${source}: missing tensor "${key}" (expected shape [${shape}])`);
    if (!tf.util.arraysEqual(t.shape, shape)) throw new Error(`${source}: tensor "${key}" has shape [${t.shape}], expected [${shape}]`);
    const want = dtype === 'float32' ? 'F32' : 'I32';
    if (t.dtype !== want) throw new Error(`${source}: tensor "${key}" is ${t.dtype}, expected ${want}`);
    out.set(name, toTorchTensor(t, key));
  }
  const known = new Set(spec.map((s) => prefix + s.name));
  for (const key of ours.keys()) {
    if (key.startsWith(prefix) && !known.has(key)) {
      throw new Error(`${source}: unexpected tensor "${key}" for a ResNet-${config.depth} (${config.stem} stem, width ${config.width ?? 64})`);
    }
  }
  return out;
}

/** A live ResNet's state under torchvision names and layouts (read with `await data()`: every backend). */
export async function resnetToTorchState(net: ResNet): Promise<Map<string, SafeTensor>> {
  return backboneToTorch(await tensorsToSafe(net.namedState()), net.config, 'ResNet');
}

/** Writes a live ResNet (e.g. from a notebook) as a torchvision-loadable .safetensors file. */
export async function exportResNetToTorch(net: ResNet, file: string, opts: { metadata?: Record<string, string> } = {}): Promise<TorchExportResult> {
  const arch = archOf(net.config);
  const tensors = await resnetToTorchState(net);
  writeSafetensorsFile(file, tensors, { ...baseMetadata(arch, new Map()), ...opts.metadata });
  return { file, arch, tensors: tensors.size, heads: [] };
}

/**
 * `npm run export`: a training checkpoint (ours, `backbone.`-prefixed) → torchvision-named
 * .safetensors, with the heads if asked. Reads tensors straight from the file: no tfjs memory.
 */
export function exportCheckpointToTorch(checkpointFile: string, outFile: string, opts: TorchExportOptions = {}): TorchExportResult {
  const ckpt = loadCheckpoint(checkpointFile);
  const arch = archOf(ckpt.meta.backbone);
  const prefix = opts.backbone === 'target' ? 'target.backbone.' : 'backbone.';
  if (![...ckpt.tensors.keys()].some((k) => k.startsWith(prefix))) {
    throw new Error(`${checkpointFile}: no tensors under "${prefix}"${opts.backbone === 'target' ? ' (this framework keeps no momentum backbone?)' : ''}`);
  }
  const tensors = backboneToTorch(ckpt.tensors, arch, checkpointFile, prefix);
  const heads = new Map<string, TorchHead>();
  if (opts.heads) {
    for (const [name, group] of checkpointHeads(ckpt.tensors)) {
      const head = headToTorch(name, group, checkpointFile);
      heads.set(name, head);
      for (const [k, t] of head.tensors) tensors.set(`${name}.${k}`, t);
    }
    if (heads.size === 0) throw new Error(`${checkpointFile}: --heads asked for, but the checkpoint has no head tensors`);
  }
  const metadata = baseMetadata(arch, heads);
  const normalize = ckpt.meta.normalize ?? (ckpt.meta.config as { normalize?: unknown } | undefined)?.normalize;
  if (normalize !== undefined && normalize !== null) metadata[TORCH_META.normalize] = JSON.stringify(normalize);
  metadata[TORCH_META.source] = JSON.stringify({
    checkpoint: path.basename(checkpointFile),
    backbone: opts.backbone ?? 'online',
    epoch: ckpt.meta.epoch,
    step: ckpt.meta.step,
    framework: (ckpt.meta.config as { framework?: unknown } | undefined)?.framework ?? null,
  });
  writeSafetensorsFile(outFile, tensors, { ...metadata, ...opts.metadata });
  return { file: outFile, arch, tensors: tensors.size, heads: [...heads.keys()] };
}
