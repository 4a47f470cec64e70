import * as tf from '@tensorflow/tfjs';
import { simsiamLoss, stopGradient } from '../losses';
import { MlpHead } from '../models/heads';
import { Framework, FrameworkCommon, OnlineOutput } from './base';

/**
 * SimSiam: −cos(p₁, sg(z₂))/2 − cos(p₂, sg(z₁))/2, no target network, no negatives; the
 * projector ends in a BatchNorm without affine parameters. Mixed views: −cos(p_m, sg(z₂)).
 */
export interface SimsiamOptions extends FrameworkCommon {
  projHidden: number;
  dim: number;
  predHidden: number;
}

export class Simsiam extends Framework {
  readonly name = 'simsiam';
  readonly projector: MlpHead;
  readonly predictor: MlpHead;

  constructor(readonly opts: SimsiamOptions) {
    super(opts);
    const d = this.backbone.featureDim;
    this.projector = this.addChild('projector', new MlpHead(d, [opts.projHidden], opts.dim, { outputBn: 'no-affine', seed: opts.seed + 1 }));
    this.predictor = this.addChild('predictor', new MlpHead(opts.dim, [opts.predHidden], opts.dim, { seed: opts.seed + 2 }));
  }

  protected forward(x: tf.Tensor4D, bnGroups: number): OnlineOutput {
    const z = this.projector.apply(this.backbone.apply(x, true, bnGroups), true, bnGroups);
    return { z, out: this.predictor.apply(z, true, bnGroups) };
  }

  protected baseLoss(o1: OnlineOutput, second: OnlineOutput | undefined): tf.Scalar {
    const o2 = this.second(second);
    const a = tf.mean(simsiamLoss(o1.out, stopGradient(o2.z)));
    const b = tf.mean(simsiamLoss(o2.out, stopGradient(o1.z)));
    return tf.mul(tf.add(a, b), 0.5) as tf.Scalar;
  }

  protected secondViewTarget(o2: OnlineOutput | undefined): tf.Tensor2D {
    return stopGradient(this.second(o2).z);
  }

  protected rowLoss(anchors: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
    return simsiamLoss(anchors, targets);
  }
}
