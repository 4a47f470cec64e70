import * as tf from '@tensorflow/tfjs';
import { Sgd as TrainSgd } from '../train/optim';
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
  /** One torch-style SGD over every group, given each parameter's group rate (lib/train/optim). */
  private readonly sgd: TrainSgd;
  /** Variable name → index of its group. */
  private readonly groupOf = new Map<string, number>();

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
    this.groups.forEach((g, i) => g.params.forEach((p) => this.groupOf.set(p.name, i)));
    this.sgd = new TrainSgd(this.variables().map((p) => [p.name, p]), { momentum: this.momentum, weightDecay: this.weightDecay });
  }

  /** Every variable of every group, in order (the varList for tf.variableGrads). */
  variables(): tf.Variable[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Applies gradients keyed by variable name (as tf.variableGrads returns them); does not dispose them. */
  step(grads: tf.NamedTensorMap): void {
    this.sgd.step(grads, (name) => this.groups[this.groupOf.get(name)!].lr * this.lrFactor);
  }

  dispose(): void {
    this.sgd.dispose();
  }
}
