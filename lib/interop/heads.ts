import { SafeTensor } from '../io/safetensors';
import { toTorchTensor } from './layout';

/**
 * Projection / prediction heads in PyTorch form. Our MlpHead names its parts `<i>.linear`,
 * `<i>.bn` and `out_bn`; PyTorch code writes the same head as an nn.Sequential of Linear,
 * BatchNorm1d and ReLU, whose keys are the running module index. A MoCo v2 head
 * (Linear → ReLU → Linear) therefore becomes `0.*` and `2.*`, exactly MoCo's `fc.0` / `fc.2`;
 * a MoCo v1 head (a single Linear) stays `weight` / `bias`, MoCo v1's `fc.weight` / `fc.bias`.
 */

export type TorchModuleSpec =
  | { type: 'Linear'; index: number | null; in: number; out: number; bias: boolean }
  | { type: 'BatchNorm1d'; index: number; features: number; affine: boolean }
  | { type: 'ReLU'; index: number };

export interface TorchHead {
  /** nn.Sequential (index = position) or a bare nn.Linear (one module, index null). */
  sequential: boolean;
  modules: TorchModuleSpec[];
  /** Tensors under PyTorch names relative to the head (`0.weight`, …). */
  tensors: Map<string, SafeTensor>;
}

const BN_KEYS = new Set(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);

/** Converts one head's tensors (names relative to the head, our layout) to PyTorch form. */
export function headToTorch(name: string, ours: Map<string, SafeTensor>, source: string): TorchHead {
  const keys = [...ours.keys()];
  const bad = (k: string, why: string) => new Error(`${source}: head "${name}": tensor "${name}.${k}" ${why}`);
  if (keys.every((k) => k === 'weight' || k === 'bias')) {
    const w = ours.get('weight');
    if (!w || w.shape.length !== 2) throw bad('weight', 'is missing or not a [in, out] matrix');
    const tensors = new Map<string, SafeTensor>();
    for (const k of keys) tensors.set(k, toTorchTensor(ours.get(k)!, `${name}.${k}`));
    return { sequential: false, modules: [{ type: 'Linear', index: null, in: w.shape[0], out: w.shape[1], bias: ours.has('bias') }], tensors };
  }
  const layers = new Map<number, { linear: Map<string, SafeTensor>; bn: Map<string, SafeTensor> }>();
  const outBn = new Map<string, SafeTensor>();
  for (const k of keys) {
    const m = /^(\d+)\.(linear|bn)\.(\w+)$/.exec(k);
    const o = /^out_bn\.(\w+)$/.exec(k);
    if (m) {
      const i = Number(m[1]);
      if (!layers.has(i)) layers.set(i, { linear: new Map(), bn: new Map() });
      if (m[2] === 'linear' ? m[3] !== 'weight' && m[3] !== 'bias' : !BN_KEYS.has(m[3])) throw bad(k, 'is not a Linear or BatchNorm tensor');
      layers.get(i)![m[2] as 'linear' | 'bn'].set(m[3], ours.get(k)!);
    } else if (o && BN_KEYS.has(o[1])) {
      outBn.set(o[1], ours.get(k)!);
    } else {
      throw bad(k, 'does not belong to a Linear or an MLP head (<i>.linear.*, <i>.bn.*, out_bn.*)');
    }
  }
  const order = [...layers.keys()].sort((a, b) => a - b);
  order.forEach((i, pos) => {
    if (i !== pos) throw bad(`${pos}.linear.weight`, 'is missing (MLP layers must be numbered 0, 1, …)');
  });
  const modules: TorchModuleSpec[] = [];
  const tensors = new Map<string, SafeTensor>();
  let index = 0;
  const addBn = (bn: Map<string, SafeTensor>, prefix: string) => {
    const mean = bn.get('running_mean');
    if (!mean) throw bad(`${prefix}.running_mean`, 'is missing');
    modules.push({ type: 'BatchNorm1d', index, features: mean.shape[0], affine: bn.has('weight') });
    for (const [k, t] of bn) tensors.set(`${index}.${k}`, toTorchTensor(t, `${name}.${prefix}.${k}`));
    index++;
  };
  order.forEach((i, pos) => {
    const { linear, bn } = layers.get(i)!;
    const w = linear.get('weight');
    if (!w || w.shape.length !== 2) throw bad(`${i}.linear.weight`, 'is missing or not a [in, out] matrix');
    modules.push({ type: 'Linear', index, in: w.shape[0], out: w.shape[1], bias: linear.has('bias') });
    for (const [k, t] of linear) tensors.set(`${index}.${k}`, toTorchTensor(t, `${name}.${i}.linear.${k}`));
    index++;
    if (bn.size > 0) addBn(bn, `${i}.bn`);
    // MlpHead puts a ReLU after every hidden layer, never after the last Linear.
    if (pos < order.length - 1) modules.push({ type: 'ReLU', index: index++ });
  });
  if (outBn.size > 0) addBn(outBn, 'out_bn');
  return { sequential: true, modules, tensors };
}

/**
 * The heads of a training checkpoint: every top-level group except the backbone, the
 * momentum/EMA copies (`target.`), the optimiser slots (`optim.`) and loose buffers (MoCo's
 * `queue`).
 */
export function checkpointHeads(tensors: Map<string, SafeTensor>): Map<string, Map<string, SafeTensor>> {
  const heads = new Map<string, Map<string, SafeTensor>>();
  for (const [key, t] of tensors) {
    const dot = key.indexOf('.');
    if (dot < 0) continue;
    const group = key.slice(0, dot);
    if (group === 'backbone' || group === 'target' || group === 'optim') continue;
    if (!heads.has(group)) heads.set(group, new Map());
    heads.get(group)!.set(key.slice(dot + 1), t);
  }
  return heads;
}
