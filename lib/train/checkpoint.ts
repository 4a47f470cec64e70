import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, SafeTensor, writeSafetensorsFile } from '../io/safetensors';
import { ResNet, ResNetConfig } from '../models/resnet';

/**
 * Checkpoints are single .safetensors files: every tensor of a run under a dotted name
 * (`backbone.layer1.0.conv1.weight`, `projector.…`, `target.…`, `optim.…`, `queue`), and the
 * rest of the run state (epoch, step, RNG state, config) as JSON strings in the metadata.
 * Written atomically (temp file + rename), so a crash never leaves a half-written checkpoint.
 */
export const CHECKPOINT_FORMAT = 'mixmask-ts-checkpoint/1';

export interface CheckpointMeta {
  /** Architecture of the online backbone, enough to rebuild it for evaluation. */
  backbone: Required<ResNetConfig>;
  epoch: number;
  step: number;
  /** Anything else the writer needs to resume (config, RNG state, queue pointer, …). */
  [key: string]: unknown;
}

export interface Checkpoint {
  tensors: Map<string, SafeTensor>;
  meta: CheckpointMeta;
}

/** A copy of a tensor's values, read with `await data()` (every backend, webgpu included). */
export async function tensorToSafe(t: tf.Tensor): Promise<SafeTensor> {
  if (t.dtype === 'float32') return { dtype: 'F32', shape: t.shape, data: Float32Array.from((await t.data()) as Float32Array) };
  if (t.dtype === 'int32') return { dtype: 'I32', shape: t.shape, data: Int32Array.from((await t.data()) as Int32Array) };
  throw new Error(`checkpoint: cannot store a ${t.dtype} tensor`);
}

/** Named tensors as safetensors entries, all read concurrently; errors on a repeated name. */
export async function tensorsToSafe(state: Iterable<[string, tf.Tensor]>): Promise<Map<string, SafeTensor>> {
  const entries = [...state];
  const seen = new Set<string>();
  for (const [name] of entries) {
    if (seen.has(name)) throw new Error(`checkpoint: two tensors are named "${name}"`);
    seen.add(name);
  }
  const values = await Promise.all(entries.map(([, t]) => tensorToSafe(t)));
  return new Map(entries.map(([name], i) => [name, values[i]]));
}

export async function saveCheckpoint(file: string, state: Iterable<[string, tf.Tensor]>, meta: CheckpointMeta): Promise<void> {
  const tensors = await tensorsToSafe(state);
  const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT };
  for (const [k, v] of Object.entries(meta)) metadata[k] = JSON.stringify(v);
  writeSafetensorsFile(file, tensors, metadata);
}

export function loadCheckpoint(file: string): Checkpoint {
  const { tensors, metadata } = readSafetensorsFile(file);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${file}: not a MixMask checkpoint (metadata "format" is ${JSON.stringify(metadata.format)}, expected "${CHECKPOINT_FORMAT}")`);
  }
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (k === 'format') continue;
    try {
      meta[k] = JSON.parse(v);
    } catch {
      throw new Error(`${file}: metadata field "${k}" is not valid JSON`);
    }
  }
  for (const field of ['backbone', 'epoch', 'step']) {
    if (meta[field] === undefined) throw new Error(`${file}: metadata has no "${field}" field`);
  }
  return { tensors, meta: meta as CheckpointMeta };
}

/**
 * Assigns `prefix + name` tensors of a checkpoint to variables, checking that every variable has
 * a tensor of its exact shape. Errors name the key and the file.
 */
export function assignFromCheckpoint(
  vars: Iterable<[string, tf.Variable]>,
  ckpt: Checkpoint,
  prefix: string,
  source: string,
): void {
  const pending: Array<[tf.Variable, SafeTensor]> = [];
  for (const [name, v] of vars) {
    const key = prefix + name;
    const t = ckpt.tensors.get(key);
    if (!t) throw new Error(`${source}: missing tensor "${key}"`);
    if (!tf.util.arraysEqual(t.shape, v.shape)) {
      throw new Error(`${source}: tensor "${key}" has shape [${t.shape}], expected [${v.shape}]`);
    }
    const dtype = t.dtype === 'F32' ? 'float32' : 'int32';
    if (dtype !== v.dtype) throw new Error(`${source}: tensor "${key}" is ${t.dtype}, expected ${v.dtype}`);
    pending.push([v, t]);
  }
  // Only assign once everything has been validated: a bad checkpoint leaves the model untouched.
  for (const [v, t] of pending) {
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array | Int32Array, t.shape, v.dtype)));
  }
}

/** Rebuilds the online backbone stored in a checkpoint (for evaluation). */
export function loadBackbone(file: string): ResNet {
  const ckpt = loadCheckpoint(file);
  const net = new ResNet(ckpt.meta.backbone);
  try {
    assignFromCheckpoint(net.namedState(), ckpt, 'backbone.', file);
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}
