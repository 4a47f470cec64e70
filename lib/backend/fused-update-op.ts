import * as tf from '@tensorflow/tfjs';

/**
 * Fused parameter updates: one kernel call per updated tensor where the per-parameter tfjs ops
 * take 3 (EMA), ~6 (SGD with momentum and weight decay) or ~10 (Adam) dispatches. A backend may
 * register them (webgpu: lib/backend/webgpu/optimizer-update.ts; wasm, and so wasm+onednn:
 * lib/backend/wasm/fused-update.ts); the optimisers
 * (lib/optim) and BatchNorm's running statistics (lib/models/layers.ts) use them where the active
 * backend has them and their tfjs ops elsewhere. PyTorch semantics, as lib/optim: weight decay is
 * L2 added to the gradient before momentum / Adam's moments. Outputs are new tensors (the
 * caller assigns them to its variables).
 *
 *   FUSED_SGD_UPDATE   inputs { w, g, v }     attrs { lr, momentum, weightDecay, nesterov }
 *                      outputs [ w', v' ]     v' = μ·v + (g + wd·w);  w' = w − lr·(nesterov ? g + wd·w + μ·v' : v')
 *   FUSED_ADAM_UPDATE  inputs { w, g, m, v }  attrs { lr, beta1, beta2, eps, weightDecay, step }
 *                      outputs [ w', m', v' ] (bias correction with `step` ≥ 1, as torch.optim.Adam)
 *   FUSED_EMA_UPDATE   inputs { target, online }  attrs { momentum, onlineScale? (default 1) }
 *                      outputs [ target' ]    target' = m·target + (1 − m)·s·online
 *                      (also BatchNorm's running statistics: m = 1 − its momentum, s = n/(n − 1)
 *                      for the unbiased running variance)
 */
export const FUSED_SGD_UPDATE = 'MixMaskSgdUpdate';
export const FUSED_ADAM_UPDATE = 'MixMaskAdamUpdate';
export const FUSED_EMA_UPDATE = 'MixMaskEmaUpdate';

/** Throws, naming the operand, unless every operand is float32 of the first one's shape. */
export function checkFusedOperands(kernel: string, operands: Record<string, tf.TensorInfo>): void {
  const entries = Object.entries(operands);
  const [n0, t0] = entries[0];
  for (const [n, t] of entries) {
    if (t.dtype !== 'float32') throw new Error(`${kernel}: ${n} must be float32, got ${t.dtype}`);
    if (t.shape.length !== t0.shape.length || t.shape.some((d, i) => d !== t0.shape[i])) {
      throw new Error(`${kernel}: ${n} has shape [${t.shape}], ${n0} has [${t0.shape}]`);
    }
  }
}

/** Throws unless `step` (FUSED_ADAM_UPDATE's bias-correction count) is an integer ≥ 1. */
export function checkAdamStep(step: number): void {
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`${FUSED_ADAM_UPDATE}: step must be an integer ≥ 1 (the update's number), got ${step}`);
}

/** Whether the active backend registered `kernel` (one of the names above). */
export function hasFusedUpdate(kernel: string): boolean {
  return tf.getKernel(kernel, tf.getBackend()) !== undefined;
}

/** target ← m·target + (1 − m)·s·online, in one kernel call where the backend has it, else with tfjs ops. */
export function emaAssign(target: tf.Variable, online: tf.Tensor, m: number, onlineScale = 1): void {
  tf.tidy(() => {
    if (hasFusedUpdate(FUSED_EMA_UPDATE)) {
      const [t2] = tf.engine().runKernel(FUSED_EMA_UPDATE, { target, online }, { momentum: m, onlineScale }) as tf.Tensor[];
      target.assign(t2);
    } else {
      const o = onlineScale === 1 ? online : tf.mul(online, onlineScale);
      target.assign(tf.add(tf.mul(target, m), tf.mul(o, 1 - m)));
    }
  });
}
