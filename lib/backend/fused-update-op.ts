import * as tf from '@tensorflow/tfjs';

/**
 * Fused multi-tensor parameter updates ("foreach", as PyTorch's _foreach ops and fused
 * optimisers): ONE kernel call updates a whole list of tensors, where the per-parameter tfjs ops
 * take 3 (EMA), ~6 (SGD with momentum and weight decay) or ~10 (Adam) dispatches per tensor and
 * a per-tensor kernel one call per tensor. A backend may register them (webgpu:
 * lib/backend/webgpu/optimizer-update.ts, a few dispatches for all tensors; wasm, and so
 * wasm+onednn: lib/backend/wasm/fused-update.ts); the optimisers and the target EMA (lib/optim)
 * and BatchNorm's running statistics (lib/models/layers.ts, through `emaAssign`) use them where
 * the active backend has them and their tfjs ops elsewhere. PyTorch semantics, as lib/optim:
 * weight decay is L2 added to the gradient before momentum / Adam's moments. Outputs are new
 * tensors (the caller assigns them to its variables).
 *
 * Inputs name each tensor's operands with its index in the list, k = 0 … n − 1; attrs hold the
 * hyper-parameters shared by the list and, as arrays of n numbers, the per-tensor ones
 * (parameter groups have their own learning rates); outputs are per tensor, in list order.
 * A one-tensor update is the list of one.
 *
 *   FUSED_SGD_UPDATE   inputs { w0, g0, v0, w1, g1, v1, … }
 *                      attrs  { lr: number[n], momentum, weightDecay, nesterov }
 *                      outputs [ w0', v0', w1', v1', … ]
 *                        v' = μ·v + (g + wd·w);  w' = w − lr·(nesterov ? g + wd·w + μ·v' : v')
 *   FUSED_ADAM_UPDATE  inputs { w0, g0, m0, v0, w1, … }
 *                      attrs  { lr: number[n], beta1, beta2, eps, weightDecay, step }
 *                      outputs [ w0', m0', v0', w1', … ]  (bias correction with `step` ≥ 1, as torch.optim.Adam)
 *   FUSED_EMA_UPDATE   inputs { target0, online0, target1, … }
 *                      attrs  { momentum, onlineScale?: number[n] (default all 1) }
 *                      outputs [ target0', target1', … ]  target' = m·target + (1 − m)·s·online
 *                      (also BatchNorm's running statistics: m = 1 − its momentum, s = n/(n − 1)
 *                      for the unbiased running variance)
 */
export const FUSED_SGD_UPDATE = 'MixMaskSgdUpdate';
export const FUSED_ADAM_UPDATE = 'MixMaskAdamUpdate';
export const FUSED_EMA_UPDATE = 'MixMaskEmaUpdate';

/** Each kernel's per-tensor input operands (in input order) and outputs (in output order). */
export const FUSED_UPDATE_SIGNATURES = {
  [FUSED_SGD_UPDATE]: { operands: ['w', 'g', 'v'], outputs: ['w', 'v'] },
  [FUSED_ADAM_UPDATE]: { operands: ['w', 'g', 'm', 'v'], outputs: ['w', 'm', 'v'] },
  [FUSED_EMA_UPDATE]: { operands: ['target', 'online'], outputs: ['target'] },
} as const;

type FusedUpdateKernel = keyof typeof FUSED_UPDATE_SIGNATURES;

export interface SgdUpdateAttrs {
  /** One learning rate per tensor. */
  lr: number[];
  momentum: number;
  weightDecay: number;
  nesterov?: boolean;
}

export interface AdamUpdateAttrs {
  /** One learning rate per tensor. */
  lr: number[];
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The update's number (≥ 1), for the bias correction. */
  step: number;
}

export interface EmaUpdateAttrs {
  momentum: number;
  /** One scale of `online` per tensor (default 1 each). */
  onlineScale?: number[];
}

/** The kernel's inputs for a list of per-tensor operand records: { w0, g0, v0, w1, … }. */
export function updateInputs<T>(operands: Array<Record<string, T>>): Record<string, T> {
  const inputs: Record<string, T> = {};
  operands.forEach((o, k) => {
    for (const [name, t] of Object.entries(o)) inputs[`${name}${k}`] = t;
  });
  return inputs;
}

/**
 * A kernel call's tensor list, checked: the inputs are exactly the kernel's operands for tensors
 * 0 … n − 1 (n ≥ 1), each float32, non-empty and of its tensor's weight (first operand) shape, and
 * every per-tensor attribute given in `perTensor` (leave out an optional one that is absent) is an
 * array of n finite numbers. Throws naming the
 * operand or attribute and what was expected.
 */
export function updateOperands(
  kernel: FusedUpdateKernel, inputs: tf.NamedTensorInfoMap, perTensor: Record<string, unknown> = {},
): Array<Record<string, tf.TensorInfo>> {
  const names = FUSED_UPDATE_SIGNATURES[kernel].operands;
  const keys = Object.keys(inputs);
  const n = keys.length / names.length;
  const expected = `${names.length} per tensor (${names.map((s) => `${s}0`).join(', ')}, ${names[0]}1, …)`;
  if (n < 1 || !Number.isInteger(n)) throw new Error(`${kernel}: ${keys.length} inputs, expected ${expected}`);
  const list: Array<Record<string, tf.TensorInfo>> = [];
  for (let k = 0; k < n; k++) {
    const operands: Record<string, tf.TensorInfo> = {};
    for (const name of names) {
      const t = inputs[`${name}${k}`];
      if (t === undefined) throw new Error(`${kernel}: no input ${name}${k} among ${keys.join(', ')} (expected ${expected})`);
      operands[name] = t;
    }
    checkFusedOperands(kernel, operands, k);
    list.push(operands);
  }
  for (const [attr, values] of Object.entries(perTensor)) {
    if (!Array.isArray(values) || values.length !== n) {
      throw new Error(`${kernel}: ${attr} must be an array of ${n} numbers (one per tensor), got ${JSON.stringify(values)}`);
    }
    values.forEach((v, k) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${kernel}: ${attr}[${k}] must be a finite number, got ${v}`);
    });
  }
  return list;
}

/**
 * Throws, naming the operand (suffixed with tensor index `k`), unless every operand is float32,
 * non-empty and of the first one's shape.
 */
function checkFusedOperands(kernel: string, operands: Record<string, tf.TensorInfo>, k: number): void {
  const entries = Object.entries(operands);
  const [n0, t0] = entries[0];
  for (const [n, t] of entries) {
    if (t.dtype !== 'float32') throw new Error(`${kernel}: ${n}${k} must be float32, got ${t.dtype}`);
    if (t.shape.length !== t0.shape.length || t.shape.some((d, i) => d !== t0.shape[i])) {
      throw new Error(`${kernel}: ${n}${k} has shape [${t.shape}], ${n0}${k} has [${t0.shape}]`);
    }
  }
  if (t0.shape.some((d) => d === 0)) throw new Error(`${kernel}: ${n0}${k} is empty (shape [${t0.shape}])`);
}

/** Throws unless `step` (FUSED_ADAM_UPDATE's bias-correction count) is an integer ≥ 1. */
export function checkAdamStep(step: number): void {
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`${FUSED_ADAM_UPDATE}: step must be an integer ≥ 1 (the update's number), got ${step}`);
}

/** Whether the active backend registered `kernel` (one of the names above). */
export function hasFusedUpdate(kernel: string): boolean {
  return tf.getKernel(kernel, tf.getBackend()) !== undefined;
}

/** Splits a kernel's flat outputs into per-tensor records (FUSED_UPDATE_SIGNATURES' output names). */
function perTensorOutputs(kernel: FusedUpdateKernel, outputs: tf.Tensor[], n: number): Array<Record<string, tf.Tensor>> {
  const names = FUSED_UPDATE_SIGNATURES[kernel].outputs;
  if (outputs.length !== n * names.length) throw new Error(`${kernel}: ${outputs.length} outputs for ${n} tensors, expected ${names.length} each`);
  return Array.from({ length: n }, (_, k) => Object.fromEntries(names.map((s, j) => [s, outputs[k * names.length + j]])));
}

/** One FUSED_SGD_UPDATE call for every tensor of `list` (the backend must have it; none for an empty list): new w and v per tensor. */
export function sgdUpdate(
  list: Array<{ w: tf.Tensor; g: tf.Tensor; v: tf.Tensor; lr: number }>, hp: Omit<SgdUpdateAttrs, 'lr'>,
): Array<{ w: tf.Tensor; v: tf.Tensor }> {
  if (list.length === 0) return [];
  const attrs: SgdUpdateAttrs = { ...hp, lr: list.map((t) => t.lr) };
  const out = tf.engine().runKernel(FUSED_SGD_UPDATE, updateInputs(list.map(({ w, g, v }) => ({ w, g, v }))), attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return perTensorOutputs(FUSED_SGD_UPDATE, out, list.length) as Array<{ w: tf.Tensor; v: tf.Tensor }>;
}

/** One FUSED_ADAM_UPDATE call for every tensor of `list` (the backend must have it; none for an empty list): new w, m and v per tensor. */
export function adamUpdate(
  list: Array<{ w: tf.Tensor; g: tf.Tensor; m: tf.Tensor; v: tf.Tensor; lr: number }>, hp: Omit<AdamUpdateAttrs, 'lr'>,
): Array<{ w: tf.Tensor; m: tf.Tensor; v: tf.Tensor }> {
  if (list.length === 0) return [];
  const attrs: AdamUpdateAttrs = { ...hp, lr: list.map((t) => t.lr) };
  const out = tf.engine().runKernel(FUSED_ADAM_UPDATE, updateInputs(list.map(({ w, g, m, v }) => ({ w, g, m, v }))), attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return perTensorOutputs(FUSED_ADAM_UPDATE, out, list.length) as Array<{ w: tf.Tensor; m: tf.Tensor; v: tf.Tensor }>;
}

/** One EMA update per list entry: target ← m·target + (1 − m)·s·online (s = onlineScale, default 1). */
export interface EmaEntry {
  target: tf.Variable;
  online: tf.Tensor;
  onlineScale?: number;
}

/**
 * Every entry's target ← m·target + (1 − m)·s·online, in one kernel call where the backend has
 * it, else with tfjs ops.
 */
export function emaAssignList(entries: EmaEntry[], m: number): void {
  if (entries.length === 0) return;
  tf.tidy(() => {
    if (hasFusedUpdate(FUSED_EMA_UPDATE)) {
      const attrs: EmaUpdateAttrs = { momentum: m, onlineScale: entries.map((e) => e.onlineScale ?? 1) };
      const out = tf.engine().runKernel(FUSED_EMA_UPDATE, updateInputs(entries.map(({ target, online }) => ({ target, online }))), attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      perTensorOutputs(FUSED_EMA_UPDATE, out, entries.length).forEach(({ target }, k) => entries[k].target.assign(target));
    } else {
      for (const { target, online, onlineScale = 1 } of entries) {
        const o = onlineScale === 1 ? online : tf.mul(online, onlineScale);
        target.assign(tf.add(tf.mul(target, m), tf.mul(o, 1 - m)));
      }
    }
  });
}

/** target ← m·target + (1 − m)·s·online: `emaAssignList` of one entry. */
export function emaAssign(target: tf.Variable, online: tf.Tensor, m: number, onlineScale = 1): void {
  emaAssignList([{ target, online, onlineScale }], m);
}
