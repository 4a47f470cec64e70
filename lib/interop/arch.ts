import * as tf from '@tensorflow/tfjs';
import { SafeTensor } from '../io/safetensors';
import { ResNet, ResNetConfig, ResNetDepth, ResNetStem } from '../models/resnet';

/**
 * What a torchvision-named state_dict holds: where the backbone's keys start (MoCo saves
 * `module.encoder_q.conv1.weight`), and which ResNet they describe.
 */

export interface StateSpecEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
}

const specCache = new Map<string, StateSpecEntry[]>();

/**
 * Names, shapes and dtypes of a ResNet's state, read from a real instance so that the layer
 * structure has a single source (lib/models/resnet.ts). Cached: building a ResNet-50 costs
 * a second of random initialisation.
 */
export function resnetStateSpec(config: ResNetConfig): StateSpecEntry[] {
  const key = JSON.stringify([config.depth, config.stem, config.width ?? 64]);
  let spec = specCache.get(key);
  if (!spec) {
    const net = new ResNet({ ...config, seed: 0 });
    try {
      spec = net.namedState().map(([name, v]) => ({ name, shape: [...v.shape], dtype: v.dtype as 'float32' | 'int32' }));
    } finally {
      net.dispose();
    }
    specCache.set(key, spec);
  }
  return spec;
}

/** Keys that belong to a backbone's classifier / projection head (`fc.*` in torchvision and MoCo). */
export function isHeadKey(nameUnderPrefix: string): boolean {
  return nameUnderPrefix === 'fc' || nameUnderPrefix.startsWith('fc.');
}

// Prefixes of the non-online copy of the encoder in common self-supervised checkpoints.
const TARGET_HINT = /(encoder_k|target|momentum|teacher|ema)[._]/;

/**
 * Finds the prefix under which a ResNet backbone is stored: every P such that P + 'conv1.weight',
 * P + 'bn1.weight' and P + 'layer1.0.conv1.weight' exist. Prefers MoCo's online encoder
 * (`encoder_q`) and avoids momentum/target copies; an ambiguous file asks for an explicit prefix.
 */
export function detectBackbonePrefix(keys: Iterable<string>, source: string): string {
  const all = new Set(keys);
  const candidates: string[] = [];
  for (const k of all) {
    if (!k.endsWith('conv1.weight')) continue;
    const p = k.slice(0, -'conv1.weight'.length);
    if (p !== '' && !p.endsWith('.')) continue;
    if (all.has(`${p}bn1.weight`) && all.has(`${p}layer1.0.conv1.weight`)) candidates.push(p);
  }
  if (candidates.length === 0) {
    const sample = [...all].slice(0, 5).map((k) => `"${k}"`).join(', ');
    throw new Error(
      `${source}: no ResNet backbone found (no key ending in "conv1.weight" with matching "bn1.weight" and "layer1.0.conv1.weight"; first keys: ${sample || 'none'})`,
    );
  }
  const rank = (p: string) => (/encoder_q[._]/.test(p) ? 0 : TARGET_HINT.test(p) ? 2 : 1);
  const best = Math.min(...candidates.map(rank));
  const top = candidates.filter((p) => rank(p) === best);
  if (top.length > 1) {
    throw new Error(`${source}: several backbones found (prefixes ${top.map((p) => `"${p}"`).join(', ')}); pass the prefix to use`);
  }
  return top[0];
}

function shapeOf(tensors: Map<string, SafeTensor>, key: string, source: string): number[] {
  const t = tensors.get(key);
  if (!t) throw new Error(`${source}: missing tensor "${key}"`);
  return t.shape;
}

/**
 * Reads the architecture off a torchvision-named state: width from conv1's output channels,
 * stem from its kernel (7×7 ImageNet, 3×3 CIFAR), block type from conv3's presence and the
 * depth from the number of blocks per stage.
 */
export function inferResNetConfig(tensors: Map<string, SafeTensor>, prefix: string, source: string): Required<Omit<ResNetConfig, 'seed'>> {
  const conv1 = shapeOf(tensors, `${prefix}conv1.weight`, source);
  if (conv1.length !== 4 || conv1[1] !== 3 || conv1[2] !== conv1[3]) {
    throw new Error(`${source}: tensor "${prefix}conv1.weight" has shape [${conv1}], expected [width, 3, k, k] (PyTorch OIHW)`);
  }
  const width = conv1[0];
  let stem: ResNetStem;
  if (conv1[2] === 7) stem = 'imagenet';
  else if (conv1[2] === 3) stem = 'cifar';
  else throw new Error(`${source}: tensor "${prefix}conv1.weight" has a ${conv1[2]}×${conv1[3]} kernel; known stems are 7×7 (imagenet) and 3×3 (cifar)`);
  const bottleneck = tensors.has(`${prefix}layer1.0.conv3.weight`);
  const counts = [1, 2, 3, 4].map((stage) => {
    const blocks = new Set<number>();
    const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}layer${stage}\\.(\\d+)\\.`);
    for (const k of tensors.keys()) {
      const m = re.exec(k);
      if (m) blocks.add(Number(m[1]));
    }
    return blocks.size;
  });
  const known: Array<[ResNetDepth, boolean, number[]]> = [
    [18, false, [2, 2, 2, 2]],
    [34, false, [3, 4, 6, 3]],
    [50, true, [3, 4, 6, 3]],
  ];
  const hit = known.find(([, b, c]) => b === bottleneck && tf.util.arraysEqual(c, counts));
  if (!hit) {
    throw new Error(
      `${source}: a ResNet with ${bottleneck ? 'bottleneck' : 'basic'} blocks [${counts}] under "${prefix}" is not supported (ResNet-18, -34 and -50 are)`,
    );
  }
  return { depth: hit[0], stem, width };
}
