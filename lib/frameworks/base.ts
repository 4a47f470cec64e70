import * as tf from '@tensorflow/tfjs';
import { l2Normalize, mixedTerms } from '../losses';
import type { View } from '../masks/views';
import { Module } from '../models/module';
import { ResNet, ResNetConfig } from '../models/resnet';
import { Rng } from '../util/rng';

/**
 * What every Siamese framework shares: an online backbone + heads, optional target networks,
 * and the MixMask/Un-Mix/erase loss template (docs/method.md#the-loss-template) applied to
 * whatever extra views the trainer makes. A framework file only says which heads it has, what
 * its targets are, and its pair loss.
 *
 *   loss = L_o(x1, x2) + Σ_views [ Σᵢ λᵢ·ℓ(out(vᵢ) → tᵢ) + Σⱼ (1−λ)·ℓ(out(v)_{inv j} → tⱼ) ] / N
 *
 * with t the framework's target for the second views. An erase view, and any view whose spec
 * switches the asymmetric loss off (`asymmetric: false`), adds one plain term ℓ(out(v) → t) of weight 1.
 */
export interface FrameworkCommon {
  backbone: Required<ResNetConfig>;
  seed: number;
}

/** The online network's outputs for one batch of images. */
export interface OnlineOutput {
  /** Projection (the embedding whose spread is the collapse indicator). */
  z: tf.Tensor2D;
  /** What the pair loss compares with a target: the prediction (BYOL, SimSiam) or z itself. */
  out: tf.Tensor2D;
}

export interface StepResult {
  loss: number;
  /** Named loss terms: 'base', and per view 'mix0.own', 'mix0.partner' ('mix0.plain' with the asymmetric loss off, 'erase0' for an erased view). */
  terms: Record<string, number>;
  /** Mean over dimensions of the per-dimension std of the L2-normalised embeddings of x1 (≈1/√d healthy, 0 collapsed). */
  embeddingStd: number;
}

export abstract class Framework<Targets extends tf.Tensor[] = tf.Tensor[]> extends Module {
  abstract readonly name: string;
  /** The online backbone: what is evaluated (kNN, probes) and exported. */
  readonly backbone: ResNet;

  constructor(readonly common: FrameworkCommon) {
    super();
    this.backbone = this.addChild('backbone', new ResNet(common.backbone));
  }

  /**
   * Online forward: backbone and heads, in training mode. Called inside the gradient tape, once
   * per step, over all the views of the step concatenated: `bnGroups` (the number of views) is
   * passed to every BatchNorm of the backbone and heads, so that each view is normalised with its
   * own statistics (see onlineViews).
   */
  protected abstract forward(x: tf.Tensor4D, bnGroups: number): OnlineOutput;

  /** Targets computed outside the gradient tape (momentum keys, EMA projections); kept by the caller. */
  protected computeTargets(_x1: tf.Tensor4D, _x2: tf.Tensor4D, _rng: Rng): Targets {
    return [] as unknown as Targets;
  }

  /**
   * Whether the loss reads the online network's output on x2 (o2). MoCo's does not — x2 reaches
   * its loss only through the key encoder, as in the official code — so its online pass runs x1
   * and the extra views only, and o2 is undefined; the other frameworks compare both views.
   */
  protected readonly onlineSecondView: boolean = true;

  /** The framework's own loss on the two views (o2: undefined where onlineSecondView is false). */
  protected abstract baseLoss(o1: OnlineOutput, o2: OnlineOutput | undefined, targets: Targets): tf.Scalar;

  /** Per-row target of the second views that mixed rows are compared with. */
  protected abstract secondViewTarget(o2: OnlineOutput | undefined, targets: Targets): tf.Tensor2D;

  /** o2 where the framework's loss needs it (onlineSecondView true); an error otherwise. */
  protected second(o2: OnlineOutput | undefined): OnlineOutput {
    if (o2 === undefined) throw new Error(`${this.name}: the loss reads the online output of x2, but onlineSecondView is false`);
    return o2;
  }

  /** Per-row pair loss ℓ(anchor rows → target rows). */
  protected abstract rowLoss(anchors: tf.Tensor2D, targets: tf.Tensor2D, targetsState: Targets): tf.Tensor1D;

  /** After the optimiser step: momentum updates, queues. */
  afterStep(_targets: Targets, _step: number, _totalSteps: number): void {}

  /** Extra non-variable state for checkpoints (e.g. the queue pointer). */
  scalars(): Record<string, number> {
    return {};
  }

  loadScalars(_s: Record<string, number>): void {}

  /** Trainable parameters of the online network (backbone and heads), with their state names. */
  namedTrainable(): Array<[string, tf.Variable]> {
    return this.namedParameters().filter(([n]) => !n.startsWith('target.'));
  }

  /**
   * One forward/backward pass: returns the loss value, its terms, the gradients (by tfjs
   * variable name; the caller applies and disposes them) and the targets for afterStep.
   * The loss and its terms are read with one `await data()`, which every backend supports
   * (webgpu under Node cannot read synchronously); on a GPU each read is a round trip.
   */
  async computeGradients(
    x1: tf.Tensor4D,
    x2: tf.Tensor4D,
    views: readonly View[],
    rng: Rng,
  ): Promise<{ result: StepResult; grads: tf.NamedTensorMap; targets: Targets }> {
    const { scalars, grads, targets } = this.gradientTensors(x1, x2, views, rng);
    let values: number[];
    try {
      const all = tf.tidy(() => tf.stack(scalars.map(([, t]) => t)));
      try {
        values = Array.from(await all.data());
      } finally {
        all.dispose();
      }
    } catch (e) {
      tf.dispose([...Object.values(grads), ...targets]);
      throw e;
    } finally {
      tf.dispose(scalars.map(([, t]) => t));
    }
    return { result: stepResult(scalars.map(([k]) => k), values), grads, targets };
  }

  /** The pass itself: named scalars ('loss', 'embeddingStd', the terms; the caller disposes them), gradients, targets. */
  private gradientTensors(
    x1: tf.Tensor4D,
    x2: tf.Tensor4D,
    views: readonly View[],
    rng: Rng,
  ): { scalars: Array<[string, tf.Scalar]>; grads: tf.NamedTensorMap; targets: Targets } {
    const targets = tf.tidy(() => this.computeTargets(x1, x2, rng));
    targets.forEach((t) => tf.keep(t));
    const kept: Record<string, tf.Scalar> = {};
    const vars = this.namedTrainable().map(([, v]) => v);
    const { value, grads } = tf.variableGrads(() => {
      const extra = views.map((v) => v.mixed);
      const online = this.onlineViews(this.onlineSecondView ? [x1, x2, ...extra] : [x1, ...extra]);
      const o1 = online[0];
      const o2 = this.onlineSecondView ? online[1] : undefined;
      const mixed = online.slice(this.onlineSecondView ? 2 : 1);
      const base = this.baseLoss(o1, o2, targets);
      kept.base = tf.keep(tf.clone(base));
      kept.embeddingStd = tf.keep(tf.mean(tf.sqrt(tf.moments(l2Normalize(o1.z), 0).variance)) as tf.Scalar);
      let total: tf.Scalar = base;
      const t2 = this.secondViewTarget(o2, targets);
      views.forEach((view, i) => {
        const om = mixed[i].out;
        if (view.inverseIndex === null || !view.asymmetric) {
          // Erase, or the asymmetric loss switched off: one plain term L(v → x₂) of weight 1.
          const term = tf.mean(this.rowLoss(om, t2, targets)) as tf.Scalar;
          kept[view.inverseIndex === null ? `erase${i}` : `mix${i}.plain`] = tf.keep(tf.clone(term));
          total = tf.add(total, term);
          return;
        }
        const { own, partner } = mixedTerms((a, b) => this.rowLoss(a, b, targets), om, t2, view.lambdas, view.inverseIndex);
        kept[`mix${i}.own`] = tf.keep(tf.clone(own));
        kept[`mix${i}.partner`] = tf.keep(tf.clone(partner));
        total = tf.add(tf.add(total, own), partner);
      });
      return total;
    }, vars);
    return { scalars: [['loss', value], ...Object.entries(kept)], grads, targets };
  }

  /**
   * The online network on every view of a step in ONE pass: the views are concatenated
   * [x1; x2; mixed…] (x2 left out where onlineSecondView is false) and every BatchNorm normalises each view with its own statistics
   * (bnGroups = number of views) and updates its running statistics once per view in this
   * order, which is exactly one forward per view in turn (every other layer works per sample),
   * in a fraction of the GPU dispatches: one pass forward and backward instead of one per view,
   * and no adding up of each weight's gradient over the passes. Outputs come back per view, in
   * the order given.
   */
  private onlineViews(xs: tf.Tensor4D[]): OnlineOutput[] {
    const shape = xs[0].shape;
    xs.forEach((x, i) => {
      if (x.shape.length !== 4 || x.shape.some((d, k) => d !== shape[k])) {
        throw new Error(
          `${this.name}: every view of a step must have the shape of x1 [${shape}] (the online encoder runs them as one batch), ` +
          `got [${x.shape}] for ${i === 1 && this.onlineSecondView ? 'x2' : `extra view ${i - (this.onlineSecondView ? 2 : 1)}`}`,
        );
      }
    });
    const o = this.forward(xs.length === 1 ? xs[0] : tf.concat(xs, 0), xs.length);
    // One view (MoCo without extra views): nothing to split (tfjs's split into one part has no gradient).
    const split = (t: tf.Tensor2D) => (xs.length === 1 ? [t] : (tf.split(t, xs.length, 0) as tf.Tensor2D[]));
    const zs = split(o.z);
    // MoCo and SimCLR compare z itself: one split serves both.
    const outs = o.out === o.z ? zs : split(o.out);
    return zs.map((z, i) => ({ z, out: outs[i] }));
  }
}

function stepResult(names: string[], values: number[]): StepResult {
  const out: StepResult = { loss: NaN, terms: {}, embeddingStd: NaN };
  names.forEach((k, i) => {
    if (k === 'loss') out.loss = values[i];
    else if (k === 'embeddingStd') out.embeddingStd = values[i];
    else out.terms[k] = values[i];
  });
  return out;
}
