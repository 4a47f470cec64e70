import * as tf from '@tensorflow/tfjs';
import { infoNce, l2Normalize } from '../losses';
import { Linear } from '../models/layers';
import { MlpHead } from '../models/heads';
import { ResNet } from '../models/resnet';
import { emaUpdate } from '../optim';
import { Rng } from '../util/rng';
import { Framework, FrameworkCommon, OnlineOutput } from './base';
import { TargetNetworks, emaPairs } from './target';

/**
 * MoCo v1 (linear head) and v2 (MLP head): InfoNCE of the query of x1 against the momentum
 * key of x2 (positive) and a queue of past keys (negatives). All MixMask terms use the same
 * keys, queue and temperature; keys are enqueued once per step.
 *
 * Shuffle-BN on one device: the official code shuffles keys across GPUs so that BatchNorm
 * statistics of the key encoder cannot leak which sample is the positive. We emulate
 * `bnSplits` devices: the key batch is permuted, cut into that many contiguous shards whose
 * BatchNorm statistics are computed separately, and un-permuted. With equal shards (the batch a
 * multiple of the splits: every training batch, since the loader drops the last incomplete one
 * and batch sizes are multiples of 4) the key encoder runs ONCE over the whole shuffled batch
 * with `bnGroups` = splits: every BatchNorm normalises each shard with its own statistics and
 * updates its running statistics once per shard in order, which is exactly the chunk-by-chunk
 * computation (every other layer works per sample) in a quarter of the passes. A batch that is
 * not a multiple (only outside the trainer) keeps shards of sizes differing by one, as the
 * PyTorch engine does (torch/mixmask_torch_engine/frameworks.py), and runs the encoder once
 * per shard: grouped BatchNorm needs equal parts.
 */
export interface MocoOptions extends FrameworkCommon {
  version: 1 | 2;
  /** Embedding dimension (moco-dim). */
  dim: number;
  /** Queue length (moco-k). */
  queueSize: number;
  /** Key encoder momentum (moco-m). */
  targetMomentum: number;
  /** Temperature (moco-t). */
  temperature: number;
  /** Virtual devices for shuffle-BN (default 4; 1 disables it). */
  bnSplits?: number;
}

export class Moco extends Framework {
  readonly name: string;
  readonly projector: Linear | MlpHead;
  readonly queue: tf.Variable;
  private queuePtr = 0;
  private readonly target: TargetNetworks;
  private readonly keyBackbone: ResNet;
  private readonly keyProjector: Linear | MlpHead;

  constructor(readonly opts: MocoOptions) {
    super(opts);
    if (!Number.isInteger(opts.queueSize) || opts.queueSize < 1) throw new Error(`moco: queueSize must be a positive integer, got ${opts.queueSize}`);
    this.name = `moco-v${opts.version}`;
    const d = this.backbone.featureDim;
    const makeHead = (seed: number) =>
      opts.version === 1 ? new Linear(d, opts.dim, new Rng(seed)) : new MlpHead(d, [d], opts.dim, { bn: false, seed });
    this.projector = this.addChild('projector', makeHead(opts.seed + 1));
    this.target = this.addChild('target', new TargetNetworks());
    this.keyBackbone = this.target.add('backbone', new ResNet(opts.backbone), this.backbone);
    this.keyProjector = this.target.add('projector', makeHead(opts.seed + 1), this.projector);
    // The queue starts as random unit vectors, as in the official code.
    const init = new Rng(opts.seed + 2).fillNormal(new Float32Array(opts.queueSize * opts.dim));
    this.queue = this.addBuffer('queue', tf.tidy(() => {
      const q = tf.tensor2d(init, [opts.queueSize, opts.dim]);
      return l2Normalize(q);
    }));
  }

  protected forward(x: tf.Tensor4D, bnGroups: number): OnlineOutput {
    const q = encode(this.backbone, this.projector, x, bnGroups);
    return { z: q, out: q };
  }

  /** Momentum keys of x2 with emulated shuffle-BN (see the class comment). */
  protected override computeTargets(_x1: tf.Tensor4D, x2: tf.Tensor4D, rng: Rng): tf.Tensor[] {
    const n = x2.shape[0];
    const splits = Math.max(1, Math.min(this.opts.bnSplits ?? 4, Math.floor(n / 2)));
    const perm = rng.permutation(n);
    const inv = new Int32Array(n);
    perm.forEach((p, i) => (inv[p] = i));
    const shuffled = tf.gather(x2, tf.tensor1d(perm, 'int32'));
    let shuffledKeys: tf.Tensor2D;
    if (n % splits === 0) {
      shuffledKeys = this.keyEncoder(shuffled, splits);
    } else {
      const sizes = Array.from({ length: splits }, (_, i) => Math.floor(((i + 1) * n) / splits) - Math.floor((i * n) / splits));
      shuffledKeys = tf.concat(tf.split(shuffled, sizes, 0).map((c) => this.keyEncoder(c as tf.Tensor4D, 1)), 0);
    }
    const keys = tf.gather(shuffledKeys, tf.tensor1d(inv, 'int32')) as tf.Tensor2D;
    return [keys];
  }

  /** The key encoder in training mode, BatchNorm statistics per each of `bnGroups` equal shards. */
  private keyEncoder(x: tf.Tensor4D, bnGroups: number): tf.Tensor2D {
    return encode(this.keyBackbone, this.keyProjector, x, bnGroups);
  }

  protected override readonly onlineSecondView = false;

  protected baseLoss(o1: OnlineOutput, _o2: OnlineOutput | undefined, [keys]: tf.Tensor[]): tf.Scalar {
    return tf.mean(infoNce(o1.out, keys as tf.Tensor2D, this.queue as tf.Tensor2D, this.opts.temperature)) as tf.Scalar;
  }

  protected secondViewTarget(_o2: OnlineOutput | undefined, [keys]: tf.Tensor[]): tf.Tensor2D {
    return keys as tf.Tensor2D;
  }

  protected rowLoss(anchors: tf.Tensor2D, keys: tf.Tensor2D): tf.Tensor1D {
    return infoNce(anchors, keys, this.queue as tf.Tensor2D, this.opts.temperature);
  }

  override afterStep([keys]: tf.Tensor[]): void {
    const { target, online } = emaPairs(this);
    emaUpdate(target, online, this.opts.targetMomentum);
    // Enqueue the normalised keys, wrapping around the ring buffer.
    tf.tidy(() => {
      const k = keys as tf.Tensor2D;
      const kn = l2Normalize(k);
      const size = this.opts.queueSize;
      const n = Math.min(kn.shape[0], size);
      const head = Math.min(n, size - this.queuePtr); // rows written at queuePtr…
      const wrap = n - head; // …and rows that wrap around to the start
      const parts: tf.Tensor[] = [];
      if (wrap > 0) parts.push(kn.slice([head, 0], [wrap, -1]));
      if (this.queuePtr > wrap) parts.push(this.queue.slice([wrap, 0], [this.queuePtr - wrap, -1]));
      parts.push(kn.slice([0, 0], [head, -1]));
      if (this.queuePtr + head < size) parts.push(this.queue.slice([this.queuePtr + head, 0], [size - this.queuePtr - head, -1]));
      this.queue.assign(tf.concat(parts, 0));
      this.queuePtr = (this.queuePtr + n) % size;
    });
  }

  override scalars(): Record<string, number> {
    return { queuePtr: this.queuePtr };
  }

  override loadScalars(s: Record<string, number>): void {
    this.queuePtr = s.queuePtr ?? 0;
  }
}

/** An encoder (query or key) in training mode, BatchNorm statistics per each of `bnGroups` equal parts of the batch. */
function encode(backbone: ResNet, projector: Linear | MlpHead, x: tf.Tensor4D, bnGroups: number): tf.Tensor2D {
  const h = backbone.apply(x, true, bnGroups);
  // MoCo v1's head is one Linear (no BatchNorm, nothing to group).
  return projector instanceof MlpHead ? projector.apply(h, true, bnGroups) : projector.apply(h);
}
