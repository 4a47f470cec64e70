import * as tf from '@tensorflow/tfjs';
import { crossViewNce, ntXent } from '../losses';
import { MlpHead } from '../models/heads';
import { Framework, FrameworkCommon, OnlineOutput } from './base';

/**
 * SimCLR: NT-Xent between the projections of the two views. A mixed view's projection is the
 * anchor, the second-view projection of the same (re-indexed) image its positive and the
 * other second-view projections its negatives.
 */
export interface SimclrOptions extends FrameworkCommon {
  /** Hidden width of the 2-layer projector (proj dim). */
  projHidden: number;
  /** Output dimension (embed-dim). */
  dim: number;
  temperature: number;
}

export class Simclr extends Framework {
  readonly name = 'simclr';
  readonly projector: MlpHead;

  constructor(readonly opts: SimclrOptions) {
    super(opts);
    this.projector = this.addChild('projector', new MlpHead(this.backbone.featureDim, [opts.projHidden], opts.dim, { seed: opts.seed + 1 }));
  }

  protected forward(x: tf.Tensor4D, bnGroups: number): OnlineOutput {
    const z = this.projector.apply(this.backbone.apply(x, true, bnGroups), true, bnGroups);
    return { z, out: z };
  }

  protected baseLoss(o1: OnlineOutput, o2: OnlineOutput | undefined): tf.Scalar {
    return tf.mean(ntXent(o1.out, this.second(o2).out, this.opts.temperature)) as tf.Scalar;
  }

  protected secondViewTarget(o2: OnlineOutput | undefined): tf.Tensor2D {
    return this.second(o2).out;
  }

  protected rowLoss(anchors: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
    return crossViewNce(anchors, targets, this.opts.temperature);
  }
}
