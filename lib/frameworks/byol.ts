import * as tf from '@tensorflow/tfjs';
import { byolLoss } from '../losses';
import { MlpHead } from '../models/heads';
import { ResNet } from '../models/resnet';
import { byolTargetMomentum, emaUpdate } from '../optim';
import { Framework, FrameworkCommon, OnlineOutput } from './base';
import { TargetNetworks, emaPairs } from './target';

/**
 * BYOL: the online prediction of one view regresses the target network's projection of the
 * other (2 − 2·cos), symmetrised over the views; the target is an EMA of the online network
 * whose decay rises from τ to 1 with a cosine. Mixed views: online prediction of x_m against
 * the target projection of x2.
 */
export interface ByolOptions extends FrameworkCommon {
  projHidden: number;
  dim: number;
  predHidden: number;
  /** Base target decay τ. */
  tau: number;
}

export class Byol extends Framework {
  readonly name = 'byol';
  readonly projector: MlpHead;
  readonly predictor: MlpHead;
  private readonly target: TargetNetworks;
  private readonly targetBackbone: ResNet;
  private readonly targetProjector: MlpHead;

  constructor(readonly opts: ByolOptions) {
    super(opts);
    const d = this.backbone.featureDim;
    this.projector = this.addChild('projector', new MlpHead(d, [opts.projHidden], opts.dim, { seed: opts.seed + 1 }));
    this.predictor = this.addChild('predictor', new MlpHead(opts.dim, [opts.predHidden], opts.dim, { seed: opts.seed + 2 }));
    this.target = this.addChild('target', new TargetNetworks());
    this.targetBackbone = this.target.add('backbone', new ResNet(opts.backbone), this.backbone);
    this.targetProjector = this.target.add('projector', new MlpHead(d, [opts.projHidden], opts.dim, { seed: opts.seed + 1 }), this.projector);
  }

  protected forward(x: tf.Tensor4D, bnGroups: number): OnlineOutput {
    const z = this.projector.apply(this.backbone.apply(x, true, bnGroups), true, bnGroups);
    return { z, out: this.predictor.apply(z, true, bnGroups) };
  }

  protected override computeTargets(x1: tf.Tensor4D, x2: tf.Tensor4D): tf.Tensor[] {
    return [x1, x2].map((x) => this.targetProjector.apply(this.targetBackbone.apply(x, true), true));
  }

  protected baseLoss(o1: OnlineOutput, o2: OnlineOutput | undefined, [t1, t2]: tf.Tensor[]): tf.Scalar {
    return tf.add(tf.mean(byolLoss(o1.out, t2 as tf.Tensor2D)), tf.mean(byolLoss(this.second(o2).out, t1 as tf.Tensor2D))) as tf.Scalar;
  }

  protected secondViewTarget(_o2: OnlineOutput | undefined, [, t2]: tf.Tensor[]): tf.Tensor2D {
    return t2 as tf.Tensor2D;
  }

  protected rowLoss(anchors: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
    return byolLoss(anchors, targets);
  }

  override afterStep(_targets: tf.Tensor[], step: number, totalSteps: number): void {
    const { target, online } = emaPairs(this);
    emaUpdate(target, online, byolTargetMomentum(this.opts.tau, step, totalSteps));
  }
}
