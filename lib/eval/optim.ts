import * as tf from '@tensorflow/tfjs';
import { checkNumber } from './common';

/**
 * SGD with momentum and per-group learning rates, PyTorch semantics (no dampening):
 *   g ← grad + wd·p;  v ← μ·v + g;  p ← p − lr·v
 * (tf.train.momentum has the same update, but one learning rate per optimizer and no weight
 * decay; fine-tuning needs separate backbone and classifier rates.)
 */
export interface ParamGroup {
  params: tf.Variable[];
  lr: number;
}

export interface SgdOptions {
  momentum?: number;
  weightDecay?: number;
}

export class Sgd {
  readonly groups: Array<{ params: tf.Variable[]; lr: number }>;
  readonly momentum: number;
  readonly weightDecay: number;
  /** Multiplies every group's lr (the schedule sets it). */
  lrFactor = 1;
  private readonly velocity = new Map<tf.Variable, tf.Variable>();

  constructor(groups: ParamGroup[], opts: SgdOptions = {}) {
    this.momentum = opts.momentum ?? 0.9;
    this.weightDecay = opts.weightDecay ?? 0;
    checkNumber('momentum', this.momentum, { min: 0 });
    checkNumber('weightDecay', this.weightDecay, { min: 0 });
    const seen = new Set<tf.Variable>();
    this.groups = groups.map((g, i) => {
      checkNumber(`groups[${i}].lr`, g.lr, { min: 0 });
      for (const p of g.params) {
        if (seen.has(p)) throw new Error(`Sgd: variable ${p.name} is in two parameter groups`);
        seen.add(p);
      }
      return { params: [...g.params], lr: g.lr };
    });
  }

  /** Every variable of every group, in order (the varList for tf.variableGrads). */
  variables(): tf.Variable[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Applies gradients keyed by variable name (as tf.variableGrads returns them); does not dispose them. */
  step(grads: tf.NamedTensorMap): void {
    tf.tidy(() => {
      for (const g of this.groups) {
        const lr = g.lr * this.lrFactor;
        for (const p of g.params) {
          let grad = grads[p.name];
          if (!grad) continue;
          if (this.weightDecay > 0) grad = tf.add(grad, tf.mul(p, this.weightDecay));
          let update = grad;
          if (this.momentum > 0) {
            let v = this.velocity.get(p);
            if (!v) {
              v = tf.variable(tf.zerosLike(p), false);
              this.velocity.set(p, v);
            }
            v.assign(tf.add(tf.mul(v, this.momentum), grad));
            update = v;
          }
          p.assign(tf.sub(p, tf.mul(update, lr)));
        }
      }
    });
  }

  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
  }
}
