import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { byolLoss, crossViewNce, infoNce, mixedTerms, ntXent, simsiamLoss } from '../../lib/losses';
import { batchNormTrain } from '../../lib/backend/batchnorm-op';
import { Rng } from '../../lib/util/rng';
import { relError, useWebgpu } from '../helpers';

/**
 * The kernels a training step runs, on the webgpu backend (Dawn; in CI Mesa's llvmpipe through
 * Vulkan) against the `cpu` backend on random inputs: relative error < 1e-5 for convolutions
 * (forward, dx, dW), BatchNorm in training mode with its gradients, matMul and every loss.
 * Shapes stay small: a software adapter compiles each shader on the CPU.
 */

const TOL = 1e-5;
let skip: string | null = null;

before(async () => {
  skip = await useWebgpu();
});

const rng = new Rng(2024);
function randn(n: number): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, 1);
}

/** Runs `fn` on `backend`, reads its outputs asynchronously, disposes everything it made. */
async function on(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const list = Array.isArray(outs) ? outs : [outs];
  const data: Float32Array[] = [];
  for (const t of list) data.push((await t.data()) as Float32Array);
  tf.dispose(list);
  return data;
}

/** Same outputs on webgpu and cpu within TOL, and nothing left allocated on either. */
async function agree(names: string[], fn: () => tf.Tensor | tf.Tensor[], tol = TOL): Promise<void> {
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const got = await on('webgpu', fn);
  const want = await on('cpu', fn);
  await tf.setBackend('webgpu');
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  assert.equal(got.length, names.length);
  for (let i = 0; i < names.length; i++) {
    assert.equal(got[i].length, want[i].length, `${names[i]}: sizes differ`);
    const e = relError(got[i], want[i]);
    assert.ok(e < tol, `${names[i]}: rel err ${e} (webgpu vs cpu)`);
    assert.ok(got[i].every(Number.isFinite), `${names[i]}: non-finite values on webgpu`);
  }
}

type Pad = 'same' | 'valid' | number;
interface ConvCase {
  name: string;
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  stride: number;
  pad: Pad;
}

const CONV_CASES: ConvCase[] = [
  { name: '3×3 s1 pad 1', n: 3, h: 8, w: 8, ci: 5, co: 6, k: 3, stride: 1, pad: 1 },
  { name: '3×3 s2 pad 1, odd 9×11', n: 2, h: 9, w: 11, ci: 4, co: 8, k: 3, stride: 2, pad: 1 },
  { name: '3×3 s2 pad 1, even 8×8', n: 2, h: 8, w: 8, ci: 3, co: 5, k: 3, stride: 2, pad: 1 },
  { name: '1×1 s2 pad 0 (downsample)', n: 3, h: 8, w: 7, ci: 6, co: 10, k: 1, stride: 2, pad: 0 },
  { name: '1×1 s1 valid', n: 5, h: 5, w: 5, ci: 9, co: 4, k: 1, stride: 1, pad: 'valid' },
  { name: '3×3 s1 valid, odd 7×5', n: 2, h: 7, w: 5, ci: 3, co: 7, k: 3, stride: 1, pad: 'valid' },
  { name: '3×3 s2 same, even (tfjs pads 0/1)', n: 2, h: 10, w: 10, ci: 3, co: 4, k: 3, stride: 2, pad: 'same' },
  { name: '7×7 s2 pad 3 (ImageNet stem)', n: 2, h: 15, w: 16, ci: 3, co: 8, k: 7, stride: 2, pad: 3 },
];

for (const c of CONV_CASES) {
  test(`conv2d forward, dx and dW on webgpu match cpu: ${c.name}`, async (t) => {
    if (skip) return t.skip(skip);
    const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [c.k, c.k, c.ci, c.co], c.stride, 1, c.pad as 'same');
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(c.k * c.k * c.ci * c.co);
    const dys = randn(info.outShape.reduce((a, b) => a * b, 1));
    await agree(['forward', 'dx', 'dW'], () => {
      const x = tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]);
      const w = tf.tensor4d(ws, [c.k, c.k, c.ci, c.co]);
      const dy = tf.tensor4d(dys, info.outShape);
      const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
      const y = tf.conv2d(x, w, c.stride, c.pad as 'same');
      const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      return [y, dx, dw];
    });
  });
}

test('conv2d gradients through tf.grads (the path autodiff takes) on webgpu match cpu', async (t) => {
  if (skip) return t.skip(skip);
  const xs = randn(3 * 9 * 9 * 4);
  const ws = randn(3 * 3 * 4 * 6);
  await agree(['dx', 'dW'], () => {
    const x = tf.tensor4d(xs, [3, 9, 9, 4]);
    const w = tf.tensor4d(ws, [3, 3, 4, 6]);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1)));
    return tf.grads(f)([x, w]);
  });
});

for (const relu of [false, true]) {
  for (const shape of [[4, 6, 5, 7], [9, 13]] as number[][]) {
    test(`BatchNorm (training mode${relu ? ' + ReLU' : ''}, [${shape}]): output, statistics and gradients on webgpu match cpu`, async (t) => {
      if (skip) return t.skip(skip);
      const c = shape[shape.length - 1];
      const size = shape.reduce((a, b) => a * b, 1);
      const xs = randn(size).map((v, i) => 3 * v + (i % c)); // a per-channel offset, like real activations
      const gs = randn(c);
      const bs = randn(c);
      const dys = randn(size);
      await agree(['y', 'mean', 'variance', 'dx', 'dScale', 'dOffset'], () => {
        const x = tf.tensor(xs, shape);
        const scale = tf.tensor1d(gs);
        const offset = tf.tensor1d(bs);
        const dy = tf.tensor(dys, shape);
        const { y, mean, variance } = batchNormTrain(x, scale, offset, 1e-5, relu);
        const grads = tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
          tf.sum(tf.mul(batchNormTrain(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-5, relu).y, dy)),
        )([x, scale, offset]);
        return [y, mean, variance, ...grads];
      });
    });
  }
}

for (const [m, k, n, ta, tb] of [
  [37, 53, 29, false, false],
  [16, 64, 16, false, true],
  [33, 7, 45, true, false],
  [8, 512, 24, false, false],
] as const) {
  test(`matMul ${m}×${k}·${k}×${n}${ta ? ' (A transposed)' : ''}${tb ? ' (B transposed)' : ''} and its gradients on webgpu match cpu`, async (t) => {
    if (skip) return t.skip(skip);
    const as = randn(m * k);
    const bs = randn(k * n);
    const dys = randn(m * n);
    await agree(['product', 'dA', 'dB'], () => {
      const a = tf.tensor2d(as, ta ? [k, m] : [m, k]);
      const b = tf.tensor2d(bs, tb ? [n, k] : [k, n]);
      const dy = tf.tensor2d(dys, [m, n]);
      const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D, ta, tb), dy));
      return [tf.matMul(a, b, ta, tb), ...tf.grads(f)([a, b])];
    });
  });
}

test('batched matMul [3, 17, 9]·[3, 9, 11] on webgpu matches cpu', async (t) => {
  if (skip) return t.skip(skip);
  const as = randn(3 * 17 * 9);
  const bs = randn(3 * 9 * 11);
  await agree(['product'], () => tf.matMul(tf.tensor3d(as, [3, 17, 9]), tf.tensor3d(bs, [3, 9, 11])));
});

/** Every loss of lib/losses: row values and the gradients with respect to both inputs. */
const N = 8;
const D = 16;
const LOSSES: Array<{ name: string; f: (a: tf.Tensor2D, b: tf.Tensor2D, queue: tf.Tensor2D) => tf.Tensor1D }> = [
  { name: 'InfoNCE (MoCo, queue of 24)', f: (a, b, q) => infoNce(a, b, q, 0.2) },
  { name: 'NT-Xent (SimCLR)', f: (a, b) => ntXent(a, b, 0.5) },
  { name: 'cross-view NCE (SimCLR mixed terms)', f: (a, b) => crossViewNce(a, b, 0.5) },
  { name: 'BYOL', f: (a, b) => byolLoss(a, b) },
  { name: 'SimSiam', f: (a, b) => simsiamLoss(a, b) },
];

for (const l of LOSSES) {
  test(`loss ${l.name}: rows and gradients on webgpu match cpu`, async (t) => {
    if (skip) return t.skip(skip);
    const as = randn(N * D);
    const bs = randn(N * D);
    const qs = randn(24 * D);
    await agree(['rows', 'dA', 'dB'], () => {
      const a = tf.tensor2d(as, [N, D]);
      const b = tf.tensor2d(bs, [N, D]);
      const q = tf.tensor2d(qs, [24, D]);
      const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.mean(l.f(x as tf.Tensor2D, y as tf.Tensor2D, q)))([a, b]);
      return [l.f(a, b, q), ...g];
    });
  });
}

test('MixMask asymmetric terms (λ-weighted own + partner, permuted rows): values and gradient on webgpu match cpu', async (t) => {
  if (skip) return t.skip(skip);
  const as = randn(N * D);
  const bs = randn(N * D);
  const lambdas = Array.from({ length: N }, (_, i) => 0.3 + 0.05 * i);
  const inverse = Int32Array.from([3, 0, 7, 1, 6, 2, 5, 4]);
  await agree(['own', 'partner', 'dOut'], () => {
    const out = tf.tensor2d(as, [N, D]);
    const targets = tf.tensor2d(bs, [N, D]);
    const { own, partner } = mixedTerms(byolLoss, out, targets, lambdas, inverse);
    const [g] = tf.grads((o: tf.Tensor) => {
      const r = mixedTerms((x, y) => crossViewNce(x, y, 0.2), o as tf.Tensor2D, targets, lambdas, inverse);
      return tf.add(r.own, r.partner);
    })([out]);
    return [own, partner, g];
  });
});

test('max-pool 3×3/2 (ImageNet stem) and global average pooling with gradients on webgpu match cpu', async (t) => {
  if (skip) return t.skip(skip);
  const xs = randn(2 * 11 * 10 * 5);
  await agree(['maxPool', 'dMaxPool', 'mean', 'dMean'], () => {
    const x = tf.tensor4d(xs, [2, 11, 10, 5]);
    const pool = (a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 3, 2, 1); // as lib/models/resnet.ts
    const gap = (a: tf.Tensor) => tf.mean(a, [1, 2]);
    const [dPool] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(pool(a), tf.linspace(-1, 1, 2 * 6 * 5 * 5).reshape([2, 6, 5, 5]))))([x]);
    const [dGap] = tf.grads((a: tf.Tensor) => tf.sum(tf.square(gap(a))))([x]);
    return [pool(x), dPool, gap(x), dGap];
  });
});

/**
 * Shapes whose dispatch would exceed maxComputeWorkgroupsPerDimension (65,535) in the stock
 * kernels (lib/backend/webgpu/kernels.ts): a side of a 2-D transpose over 16 × 65,535, a
 * product with over ~2 million rows — the augmentations' pixel rows at batch 512 and 64×64.
 */
const LONG = 65_535 * 32 + 5;

test(`2-D transpose with a side of ${LONG} (over the dispatch limit) on webgpu matches cpu, both ways`, async (t) => {
  if (skip) return t.skip(skip);
  const xs = randn(LONG * 3);
  await agree(['[L, 3]ᵀ', '[3, L]ᵀ'], () => [tf.transpose(tf.tensor2d(xs, [LONG, 3])), tf.transpose(tf.tensor2d(xs, [3, LONG]))]);
});

test(`matMul and fused matMul + bias with ${LONG} rows (over the dispatch limit), with gradients, on webgpu match cpu`, async (t) => {
  if (skip) return t.skip(skip);
  const xs = randn(LONG * 3);
  const ws = randn(9);
  await agree(['product', 'fused + bias + relu', 'dA', 'dB'], () => {
    const a = tf.tensor3d(xs, [1, LONG, 3]);
    const w = tf.tensor3d(ws, [1, 3, 3]);
    const bias = tf.tensor1d([0.5, -0.25, 1]);
    const fused = tf.fused.matMul({ a, b: w, bias, activation: 'relu' });
    const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D))))([a, w]);
    return [tf.matMul(a, w), fused, ...g];
  });
});
