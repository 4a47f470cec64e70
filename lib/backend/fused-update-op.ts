import * as tf from '@tensorflow/tfjs';

/**
 * Fused parameter updates: one kernel call per updated tensor where the per-parameter tfjs ops
 * take 3 (EMA), ~6 (SGD with momentum and weight decay) or ~10 (Adam) dispatches. A backend may
 * register them (webgpu does: lib/backend/webgpu/optimizer-update.ts); the optimisers
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
