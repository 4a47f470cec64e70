import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { Module } from './module';
import { BatchNorm, Conv2d, convBn } from './layers';

/**
 * ResNet backbones as in torchvision (v1.5: stride on the 3×3 conv of the bottleneck), with
 * the same state names, returning global-average-pooled features (no classifier).
 *
 * - stem 'cifar': 3×3 conv, stride 1, no max-pool (the CIFAR / Tiny-ImageNet recipe).
 * - stem 'imagenet': 7×7 conv, stride 2, then 3×3 max-pool, stride 2.
 * - width: channels of the first stage (64 in the paper); smaller widths give the narrow
 *   variants used for quick CPU runs. Stage widths are width·{1, 2, 4, 8}.
 */
export type ResNetDepth = 18 | 34 | 50;
export type ResNetStem = 'cifar' | 'imagenet';

export interface ResNetConfig {
  depth: ResNetDepth;
  stem: ResNetStem;
  width?: number;
  seed?: number;
}

const STAGES: Record<ResNetDepth, { block: 'basic' | 'bottleneck'; layers: [number, number, number, number] }> = {
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
};

interface Block extends Module {
  apply(x: tf.Tensor4D, training: boolean, bnGroups: number): tf.Tensor4D;
}

/** conv1×1 + BN projection of the identity path when shape changes. */
class Downsample extends Module {
  private readonly conv: Conv2d;
  private readonly bn: BatchNorm;

  constructor(inC: number, outC: number, stride: number, rng: Rng) {
    super();
    // torchvision names this nn.Sequential(conv, bn): keys downsample.0.* and downsample.1.*
    this.conv = this.addChild('0', new Conv2d(inC, outC, 1, stride, 0, rng));
    this.bn = this.addChild('1', new BatchNorm(outC));
  }

  apply(x: tf.Tensor4D, training: boolean, bnGroups: number): tf.Tensor4D {
    return convBn(this.conv, this.bn, x, training, false, bnGroups);
  }
}

class BasicBlock extends Module implements Block {
  static readonly expansion = 1;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly downsample: Downsample | null;

  constructor(inC: number, planes: number, stride: number, rng: Rng) {
    super();
    this.conv1 = this.addChild('conv1', new Conv2d(inC, planes, 3, stride, 1, rng));
    this.bn1 = this.addChild('bn1', new BatchNorm(planes));
    this.conv2 = this.addChild('conv2', new Conv2d(planes, planes, 3, 1, 1, rng));
    this.bn2 = this.addChild('bn2', new BatchNorm(planes));
    this.downsample =
      stride !== 1 || inC !== planes ? this.addChild('downsample', new Downsample(inC, planes, stride, rng)) : null;
  }

  apply(x: tf.Tensor4D, training: boolean, bnGroups: number): tf.Tensor4D {
    const h = convBn(this.conv1, this.bn1, x, training, true, bnGroups);
    const identity = this.downsample ? this.downsample.apply(x, training, bnGroups) : x;
    // relu(bn2(conv2(h)) + identity): in training one fused BatchNorm kernel where the backend has it.
    return convBn(this.conv2, this.bn2, h, training, true, bnGroups, identity);
  }
}

class Bottleneck extends Module implements Block {
  static readonly expansion = 4;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly conv3: Conv2d;
  private readonly bn3: BatchNorm;
  private readonly downsample: Downsample | null;

  constructor(inC: number, planes: number, stride: number, rng: Rng) {
    super();
    const outC = planes * Bottleneck.expansion;
    this.conv1 = this.addChild('conv1', new Conv2d(inC, planes, 1, 1, 0, rng));
    this.bn1 = this.addChild('bn1', new BatchNorm(planes));
    this.conv2 = this.addChild('conv2', new Conv2d(planes, planes, 3, stride, 1, rng));
    this.bn2 = this.addChild('bn2', new BatchNorm(planes));
    this.conv3 = this.addChild('conv3', new Conv2d(planes, outC, 1, 1, 0, rng));
    this.bn3 = this.addChild('bn3', new BatchNorm(outC));
    this.downsample =
      stride !== 1 || inC !== outC ? this.addChild('downsample', new Downsample(inC, outC, stride, rng)) : null;
  }

  apply(x: tf.Tensor4D, training: boolean, bnGroups: number): tf.Tensor4D {
    const h1 = convBn(this.conv1, this.bn1, x, training, true, bnGroups);
    const h2 = convBn(this.conv2, this.bn2, h1, training, true, bnGroups);
    const identity = this.downsample ? this.downsample.apply(x, training, bnGroups) : x;
    // relu(bn3(conv3(h2)) + identity): in training one fused BatchNorm kernel where the backend has it.
    return convBn(this.conv3, this.bn3, h2, training, true, bnGroups, identity);
  }
}

class Stage extends Module {
  private readonly blocks: Block[] = [];

  constructor(blocks: Block[]) {
    super();
    blocks.forEach((b, i) => this.blocks.push(this.addChild(String(i), b)));
  }

  apply(x: tf.Tensor4D, training: boolean, bnGroups: number): tf.Tensor4D {
    return this.blocks.reduce((h, b) => b.apply(h, training, bnGroups), x);
  }
}

export class ResNet extends Module {
  readonly config: Required<ResNetConfig>;
  /** Size of the pooled feature vector. */
  readonly featureDim: number;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly stages: Stage[] = [];

  constructor(config: ResNetConfig) {
    super();
    const width = config.width ?? 64;
    if (!Number.isInteger(width) || width < 1) throw new Error(`ResNet: width must be a positive integer, got ${width}`);
    if (!(config.depth in STAGES)) throw new Error(`ResNet: depth must be one of 18, 34, 50, got ${config.depth}`);
    if (config.stem !== 'cifar' && config.stem !== 'imagenet') {
      throw new Error(`ResNet: stem must be 'cifar' or 'imagenet', got '${config.stem}'`);
    }
    this.config = { depth: config.depth, stem: config.stem, width, seed: config.seed ?? 0 };
    const rng = new Rng(this.config.seed);
    const { block, layers } = STAGES[config.depth];
    const expansion = block === 'basic' ? BasicBlock.expansion : Bottleneck.expansion;

    this.conv1 =
      config.stem === 'cifar'
        ? this.addChild('conv1', new Conv2d(3, width, 3, 1, 1, rng))
        : this.addChild('conv1', new Conv2d(3, width, 7, 2, 3, rng));
    this.bn1 = this.addChild('bn1', new BatchNorm(width));

    let inC = width;
    layers.forEach((count, stageIndex) => {
      const planes = width * 2 ** stageIndex;
      const blocks: Block[] = [];
      for (let i = 0; i < count; i++) {
        const stride = i === 0 && stageIndex > 0 ? 2 : 1;
        blocks.push(block === 'basic' ? new BasicBlock(inC, planes, stride, rng) : new Bottleneck(inC, planes, stride, rng));
        inC = planes * expansion;
      }
      this.stages.push(this.addChild(`layer${stageIndex + 1}`, new Stage(blocks)));
    });
    this.featureDim = inC;
  }

  /**
   * x: [N, H, W, 3] → pooled features [N, featureDim]. `bnGroups` (training): every BatchNorm
   * normalises each of that many equal contiguous parts of the batch with its own statistics,
   * so the result is that of running the network on each part separately (every other layer
   * works per sample); N must be a multiple of it.
   */
  apply(x: tf.Tensor4D, training: boolean, bnGroups = 1): tf.Tensor2D {
    if (x.rank !== 4 || x.shape[3] !== 3) {
      throw new Error(`ResNet: expected input [N, H, W, 3], got [${x.shape}]`);
    }
    let h = convBn(this.conv1, this.bn1, x, training, true, bnGroups);
    if (this.config.stem === 'imagenet') h = tf.maxPool(h, 3, 2, 1);
    for (const stage of this.stages) h = stage.apply(h, training, bnGroups);
    return tf.mean(h, [1, 2]) as tf.Tensor2D;
  }
}

export function resnet18(opts: Partial<ResNetConfig> = {}): ResNet {
  return new ResNet({ depth: 18, stem: 'cifar', ...opts });
}

export function resnet50(opts: Partial<ResNetConfig> = {}): ResNet {
  return new ResNet({ depth: 50, stem: 'imagenet', ...opts });
}
