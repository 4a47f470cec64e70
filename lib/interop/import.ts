import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { NORMALIZATION, NormalizeSpec } from '../data/augment';
import { readSafetensorsFile, SafeTensor } from '../io/safetensors';
import { ResNet, ResNetConfig, ResNetDepth, ResNetStem } from '../models/resnet';
import { Checkpoint, CheckpointMeta, assignFromCheckpoint, saveCheckpoint } from '../train/checkpoint';
import { detectBackbonePrefix, inferResNetConfig, isHeadKey, resnetStateSpec } from './arch';
import { TORCH_META } from './export';
import { fromTorchTensor } from './layout';
import { PthConvertOptions, withSafetensors } from './pth';

/**
 * Import from PyTorch: a torchvision-named state (plain `conv1.weight`, DataParallel's
 * `module.conv1.weight`, MoCo's `module.encoder_q.conv1.weight`, …) from .safetensors, or from
 * .pth / .pth.tar through the user's PyTorch, into our ResNet. The backbone prefix and the
 * architecture are read off the keys and shapes; explicit options are checked against them.
 * `fc.*` under the prefix is the classifier / projection head and is skipped (and reported).
 */

export interface TorchImportOptions extends PthConvertOptions {
  depth?: ResNetDepth;
  stem?: ResNetStem;
  width?: number;
  /** Key prefix of the backbone (default: detected, preferring MoCo's encoder_q). */
  prefix?: string;
  /** Fail on tensors under the prefix that a torchvision ResNet does not have (default true). */
  strict?: boolean;
}

export interface TorchImportReport {
  source: string;
  prefix: string;
  config: Required<ResNetConfig>;
  /** Tensors imported into the backbone. */
  imported: number;
  /** Head keys under the prefix (`fc.*`), not part of the backbone. */
  skippedHead: string[];
  /** Tensors under the prefix that are no part of a torchvision ResNet (only with strict: false). */
  skippedUnknown: string[];
  /** Keys outside the prefix (momentum encoder, queue, optimiser state, …): ignored. */
  ignoredOutsidePrefix: number;
  /** BatchNorm counters absent from the file (PyTorch < 0.4.1 checkpoints), set to 0. */
  defaulted: string[];
  /** The file's safetensors metadata (epoch and source of a converted .pth, our export's arch, …). */
  metadata: Record<string, string>;
}

/**
 * Converts a torchvision-named state to our backbone state (names relative to the backbone,
 * our layouts), validating every tensor. Errors name the source, the key and the expected
 * shape in PyTorch's layout.
 */
export function torchStateToBackbone(
  tensors: Map<string, SafeTensor>,
  opts: TorchImportOptions,
  source: string,
  metadata: Record<string, string> = {},
): { state: Map<string, SafeTensor>; report: TorchImportReport } {
  const prefix = opts.prefix ?? detectBackbonePrefix(tensors.keys(), source);
  if (opts.prefix !== undefined && !tensors.has(`${prefix}conv1.weight`)) {
    throw new Error(`${source}: missing tensor "${prefix}conv1.weight" (no backbone under prefix "${prefix}")`);
  }
  const explicit = opts.depth !== undefined && opts.stem !== undefined && opts.width !== undefined;
  const inferred = explicit ? null : inferResNetConfig(tensors, prefix, source);
  const config: Required<ResNetConfig> = {
    depth: opts.depth ?? inferred!.depth,
    stem: opts.stem ?? inferred!.stem,
    width: opts.width ?? inferred!.width,
    seed: 0,
  };
  if (inferred) {
    for (const k of ['depth', 'stem', 'width'] as const) {
      if (opts[k] !== undefined && opts[k] !== inferred[k]) {
        throw new Error(
          `${source}: the weights under "${prefix}" are a ResNet-${inferred.depth} with ${inferred.stem} stem and width ${inferred.width}, but ${k} ${opts[k]} was asked for`,
        );
      }
    }
  }
  const state = new Map<string, SafeTensor>();
  const defaulted: string[] = [];
  const spec = resnetStateSpec(config);
  for (const entry of spec) {
    const key = prefix + entry.name;
    const t = tensors.get(key);
    if (!t) {
      if (entry.name.endsWith('num_batches_tracked')) {
        defaulted.push(key);
        state.set(entry.name, { dtype: 'I32', shape: [], data: new Int32Array(1) });
        continue;
      }
      const want = entry.shape.length === 4 ? [entry.shape[3], entry.shape[2], entry.shape[0], entry.shape[1]] : entry.shape;
      throw new Error(`${source}: missing tensor "${key}" (expected shape [${want}], PyTorch layout)`);
    }
    state.set(entry.name, fromTorchTensor(t, entry, key, source));
  }
  const known = new Set(spec.map((s) => s.name));
  // Our own exports keep their heads (projector.*, predictor.*) beside the backbone's keys.
  const exportedHeads = new Set(Object.keys(JSON.parse(metadata[TORCH_META.heads] ?? '{}') as object));
  const skippedHead: string[] = [];
  const skippedUnknown: string[] = [];
  let outside = 0;
  for (const key of tensors.keys()) {
    if (!key.startsWith(prefix)) {
      outside++;
      continue;
    }
    const name = key.slice(prefix.length);
    if (known.has(name)) continue;
    if (isHeadKey(name) || exportedHeads.has(name.split('.', 1)[0])) skippedHead.push(key);
    else skippedUnknown.push(key);
  }
  if (skippedUnknown.length > 0 && opts.strict !== false) {
    throw new Error(
      `${source}: unexpected tensor "${skippedUnknown[0]}"${skippedUnknown.length > 1 ? ` (and ${skippedUnknown.length - 1} more)` : ''} under "${prefix}": not part of a torchvision ResNet-${config.depth} (pass strict: false to skip such tensors)`,
    );
  }
  const report: TorchImportReport = {
    source, prefix, config, imported: spec.length - defaulted.length, skippedHead, skippedUnknown,
    ignoredOutsidePrefix: outside, defaulted, metadata,
  };
  return { state, report };
}

/** Reads a .safetensors (or, through the user's PyTorch, .pth / .pth.tar) state dict. */
export function readTorchStateDict(file: string, opts: PthConvertOptions = {}): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  return withSafetensors(file, opts, (f) => readSafetensorsFile(f));
}

/** Builds our ResNet from a validated state; disposes it again if assignment fails. */
function buildResNet(state: Map<string, SafeTensor>, config: Required<ResNetConfig>, source: string): ResNet {
  const net = new ResNet(config);
  try {
    const ckpt: Checkpoint = { tensors: state, meta: { backbone: config, epoch: 0, step: 0 } };
    assignFromCheckpoint(net.namedState(), ckpt, '', source);
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}

/** Imports a PyTorch backbone and says what was taken from where. */
export function importTorchBackboneWithReport(file: string, opts: TorchImportOptions = {}): { net: ResNet; report: TorchImportReport } {
  const { tensors, metadata } = readTorchStateDict(file, opts);
  const { state, report } = torchStateToBackbone(tensors, opts, file, metadata);
  return { net: buildResNet(state, report.config, file), report };
}

/**
 * A PyTorch ResNet checkpoint (torchvision names; plain, `module.` or MoCo's
 * `module.encoder_q.`; .safetensors, .pth or .pth.tar) as our ResNet, ready for lib/eval.
 * The caller owns the returned network (dispose() it).
 */
export function importTorchBackbone(file: string, opts: TorchImportOptions = {}): ResNet {
  return importTorchBackboneWithReport(file, opts).net;
}

export interface TorchImportToCheckpointOptions extends TorchImportOptions {
  /**
   * Pixel normalisation the weights expect, stored in the checkpoint for `npm run eval`: a
   * name from NORMALIZATION, 'none', or a spec. Default: what an exported file records, else
   * ImageNet's (torchvision's convention).
   */
  normalize?: keyof typeof NORMALIZATION | 'none' | NormalizeSpec;
}

function resolveNormalize(opt: TorchImportToCheckpointOptions['normalize'], metadata: Record<string, string>): NormalizeSpec | null {
  if (opt === 'none') return null;
  if (typeof opt === 'string') {
    if (!(opt in NORMALIZATION)) throw new Error(`normalize must be none or one of ${Object.keys(NORMALIZATION).join(', ')}, got '${opt}'`);
    return NORMALIZATION[opt];
  }
  if (opt) return opt;
  const saved = metadata[TORCH_META.normalize];
  if (saved !== undefined) {
    const v = JSON.parse(saved) as unknown;
    if (typeof v === 'string' && v in NORMALIZATION) return NORMALIZATION[v as keyof typeof NORMALIZATION];
    if (v && typeof v === 'object' && Array.isArray((v as NormalizeSpec).mean)) return v as NormalizeSpec;
    if (v === null) return null;
  }
  return NORMALIZATION.imagenet;
}

/**
 * `npm run import`: a PyTorch backbone → our checkpoint format (`backbone.`-prefixed tensors,
 * metadata with the backbone config), which `loadBackbone` and `npm run eval` read.
 */
export async function importTorchToCheckpoint(inFile: string, outFile: string, opts: TorchImportToCheckpointOptions = {}): Promise<TorchImportReport> {
  const { tensors, metadata } = readTorchStateDict(inFile, opts);
  const { state, report } = torchStateToBackbone(tensors, opts, inFile, metadata);
  const normalize = resolveNormalize(opts.normalize, metadata);
  const epoch = Number(metadata['mixmask.epoch']);
  const net = buildResNet(state, report.config, inFile);
  try {
    const meta: CheckpointMeta = {
      backbone: report.config,
      epoch: Number.isInteger(epoch) ? epoch : 0,
      step: 0,
      normalize,
      imported: {
        from: path.basename(inFile),
        prefix: report.prefix,
        skippedHead: report.skippedHead.length,
        defaulted: report.defaulted.length,
      },
    };
    await saveCheckpoint(outFile, net.namedState().map(([n, v]) => [`backbone.${n}`, v] as [string, tf.Tensor]), meta);
  } finally {
    net.dispose();
  }
  return report;
}
