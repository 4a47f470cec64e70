import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { Module } from './module';
import { BatchNorm, Linear } from './layers';

/**
 * MLP head: Linear → [BN] → ReLU for every hidden layer, then a final Linear with an optional
 * BatchNorm on the output. This one shape covers the projectors and predictors of MoCo v2,
 * SimCLR, BYOL and SimSiam (whose projector ends in a BatchNorm without affine parameters);
 * the frameworks choose the dimensions.
 */
export interface MlpOptions {
  /** BatchNorm after each hidden Linear (default true). */
  bn?: boolean;
  /** BatchNorm on the output: false (default), 'affine', or 'no-affine' (SimSiam). */
  outputBn?: false | 'affine' | 'no-affine';
  seed?: number;
}

export class MlpHead extends Module {
  readonly inDim: number;
  readonly outDim: number;
  private readonly layers: Array<{ linear: Linear; bn: BatchNorm | null }> = [];
  private readonly outBn: BatchNorm | null;

  constructor(inDim: number, hiddenDims: number[], outDim: number, opts: MlpOptions = {}) {
    super();
    for (const [name, d] of [['inDim', inDim], ['outDim', outDim], ...hiddenDims.map((h, i) => [`hiddenDims[${i}]`, h])] as const) {
      if (!Number.isInteger(d) || (d as number) < 1) throw new Error(`MlpHead: ${name} must be a positive integer, got ${d}`);
    }
    this.inDim = inDim;
    this.outDim = outDim;
    const rng = new Rng(opts.seed ?? 1);
    const useBn = opts.bn ?? true;
    const dims = [inDim, ...hiddenDims, outDim];
    // Names mirror an nn.Sequential of (Linear, BN, ReLU) triples: layers.<i>.linear / layers.<i>.bn
    for (let i = 0; i < dims.length - 1; i++) {
      const isLast = i === dims.length - 2;
      const hasBn = !isLast && useBn;
      const linear = this.addChild(`${i}.linear`, new Linear(dims[i], dims[i + 1], rng, !hasBn));
      const bn = hasBn ? this.addChild(`${i}.bn`, new BatchNorm(dims[i + 1])) : null;
      this.layers.push({ linear, bn });
    }
    const outBn = opts.outputBn ?? false;
    this.outBn = outBn ? this.addChild('out_bn', new BatchNorm(outDim, { affine: outBn === 'affine' })) : null;
  }

  /** `bnGroups` (training): BatchNorm statistics per equal contiguous part of the batch, as in ResNet.apply. */
  apply(x: tf.Tensor2D, training: boolean, bnGroups = 1): tf.Tensor2D {
    let h = x;
    this.layers.forEach(({ linear, bn }, i) => {
      const isLast = i === this.layers.length - 1;
      h = linear.apply(h);
      if (bn) h = bn.apply(h, training, true, bnGroups);
      else if (!isLast) h = tf.relu(h);
    });
    return this.outBn ? this.outBn.apply(h, training, false, bnGroups) : h;
  }
}
