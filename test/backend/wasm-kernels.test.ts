import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../lib/backend';
import { FilterAlgorithm, setConvFilterAlgorithm, setConvFilterChunk } from '../../lib/backend/wasm/conv-grad';
import { batchNormTrain, batchNormTrainComposite, FUSED_BATCH_NORM_GRAD_KERNEL, FUSED_BATCH_NORM_KERNEL, hasFusedBatchNorm, hasGroupedBatchNorm, hasResidualBatchNorm } from '../../lib/backend/batchnorm-op';
import { timeOps } from '../../bench/op-timer';
import { Rng } from '../../lib/util/rng';
import { type ConvPad as Pad, relError, useBackend } from '../helpers';
import { compareLayerWithCpu, compareWithCpu } from './bn-running-stats';
import { compareGroupedLayerWithCpu, compareGroupedStats, compareGroupedWithCpu, compareResidualFallback, groupedInputs, GROUPED_SHAPES, GROUPS, OUTPUTS, runGrouped } from './bn-grouped';

/**
 * The wasm kernels of lib/backend/wasm against the `cpu` backend on random inputs: convolution
 * gradients over strides, paddings ('same', 'valid', numbers, explicit), filter shapes and odd
 * sizes, the fused BatchNorm against the composite reference (also with `groups`: separate
 * statistics per equal part of the batch, against the composite on each group; and the
 * per-group fallback for a kernel that has not declared groups; with a residual, y =
 * act(BN(x) + residual) and dResidual against BN, Add and ReLU on cpu, and the fallback for a
 * kernel that has not declared the residual, as oneDNN's), and its running-statistics
 * update (and a BatchNorm layer trained a few steps) against the tfjs-op formula on cpu. The XNNPACK
 * thread count is fixed per process, so the 1-vs-2-thread check of the dW algorithms runs this
 * file as a child process (MIXMASK_WASM_DW_CHILD=<threads>:<output file>), in which the other
 * tests are skipped.
 */
const DW_CHILD = 'MIXMASK_WASM_DW_CHILD';
const maybeTest = process.env[DW_CHILD] ? test.skip : test;

interface ConvCase {
  name: string;
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  stride: number | [number, number];
  pad: Pad;
}

const CASES: ConvCase[] = [
  { name: '3×3 s1 pad 1', n: 5, h: 9, w: 9, ci: 6, co: 7, kh: 3, kw: 3, stride: 1, pad: 1 },
  { name: '3×3 s2 pad 1, odd 9×11', n: 3, h: 9, w: 11, ci: 5, co: 8, kh: 3, kw: 3, stride: 2, pad: 1 },
  { name: '3×3 s2 pad 1, even 8×8', n: 2, h: 8, w: 8, ci: 4, co: 6, kh: 3, kw: 3, stride: 2, pad: 1 },
  { name: '1×1 s2 pad 0 (downsample)', n: 3, h: 8, w: 7, ci: 6, co: 10, kh: 1, kw: 1, stride: 2, pad: 0 },
  { name: '1×1 s1 valid', n: 7, h: 5, w: 5, ci: 9, co: 4, kh: 1, kw: 1, stride: 1, pad: 'valid' },
  { name: '5×5 s1 same', n: 2, h: 7, w: 6, ci: 3, co: 5, kh: 5, kw: 5, stride: 1, pad: 'same' },
  { name: '5×5 s2 same, odd 11×9', n: 2, h: 11, w: 9, ci: 4, co: 3, kh: 5, kw: 5, stride: 2, pad: 'same' },
  { name: '3×3 s2 same, even (tfjs pads 0/1)', n: 3, h: 10, w: 10, ci: 3, co: 4, kh: 3, kw: 3, stride: 2, pad: 'same' },
  { name: '3×3 s2 valid, odd', n: 2, h: 9, w: 9, ci: 4, co: 4, kh: 3, kw: 3, stride: 2, pad: 'valid' },
  { name: '7×7 s2 pad 3 (ImageNet stem)', n: 2, h: 15, w: 16, ci: 3, co: 8, kh: 7, kw: 7, stride: 2, pad: 3 },
  { name: '3×2 non-square, strides [2,1], valid', n: 3, h: 8, w: 7, ci: 4, co: 5, kh: 3, kw: 2, stride: [2, 1], pad: 'valid' },
  { name: '2×4 non-square s1 same', n: 2, h: 6, w: 9, ci: 3, co: 4, kh: 2, kw: 4, stride: 1, pad: 'same' },
  { name: '3×3 s1 pad 3 (pad ≥ kernel: cropped dy)', n: 2, h: 5, w: 6, ci: 3, co: 4, kh: 3, kw: 3, stride: 1, pad: 3 },
  { name: '3×3 s2 pad 2', n: 2, h: 7, w: 8, ci: 3, co: 4, kh: 3, kw: 3, stride: 2, pad: 2 },
  { name: '4×4 s3 pad 1 (stride 3)', n: 2, h: 10, w: 11, ci: 3, co: 4, kh: 4, kw: 4, stride: 3, pad: 1 },
  { name: '3×3 s2 explicit [[1,2],[0,1]]', n: 2, h: 9, w: 8, ci: 3, co: 5, kh: 3, kw: 3, stride: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: '3×3 s1 pad 1, batch 13 (not a multiple of the dW chunk)', n: 13, h: 6, w: 6, ci: 4, co: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
  // Large enough for 'auto' to pick the per-tap GEMM with its own chunking (5 + 2 images).
  { name: '3×3 s1 pad 1, 20×20, batch 7 (GEMM in several chunks)', n: 7, h: 20, w: 20, ci: 5, co: 6, kh: 3, kw: 3, stride: 1, pad: 1 },
  { name: '3×3 s2 pad 1, 21×19 (odd, GEMM phases of unequal size)', n: 3, h: 21, w: 19, ci: 4, co: 5, kh: 3, kw: 3, stride: 2, pad: 1 },
  { name: '1×1 s1 pad 1 (padding reaches the output)', n: 3, h: 5, w: 6, ci: 4, co: 3, kh: 1, kw: 1, stride: 1, pad: 1 },
  { name: '1×1 s2 valid, odd 9×7, Ci > Co', n: 5, h: 9, w: 7, ci: 9, co: 4, kh: 1, kw: 1, stride: 2, pad: 'valid' },
  { name: '3×5 non-square, strides [1,2], same', n: 3, h: 9, w: 12, ci: 3, co: 4, kh: 3, kw: 5, stride: [1, 2], pad: 'same' },
  // Small output, Co ≥ 128: 'auto' picks the im2col GEMM.
  { name: '3×3 s2 pad 1, 7×7 → 4×4, Co 128 (im2col)', n: 5, h: 7, w: 7, ci: 6, co: 128, kh: 3, kw: 3, stride: 2, pad: 1 },
];

/**
 * dW is computed by every algorithm and chunking (conv-grad.ts picks one per shape): the
 * dilated forward convolution in chunks of 4 and 64 images, the per-tap grid GEMM in chunks of
 * 2 and 3 images (batches here are mostly not multiples), with its own chunk, with output
 * channels split in blocks of 3, the im2col GEMM in chunks of 2 and its own, and the per-shape
 * choice.
 */
const DW_VARIANTS: Array<[string, () => void]> = [
  [
    'conv, chunk 4',
    () => {
      setConvFilterAlgorithm('conv');
      setConvFilterChunk(4);
    },
  ],
  [
    'conv, chunk 64',
    () => {
      setConvFilterAlgorithm('conv');
      setConvFilterChunk(64);
    },
  ],
  ['gemm, chunk 2', () => setConvFilterAlgorithm('gemm', { gemmChunk: 2 })],
  ['gemm, chunk 3, Co blocks of 3', () => setConvFilterAlgorithm('gemm', { gemmChunk: 3, gemmCoBlock: 3 })],
  ['gemm, own chunk', () => setConvFilterAlgorithm('gemm')],
  ['im2col, chunk 2', () => setConvFilterAlgorithm('im2col', { gemmChunk: 2 })],
  ['im2col, own chunk', () => setConvFilterAlgorithm('im2col')],
  ['auto', () => setConvFilterAlgorithm('auto')],
];
function resetDw(): void {
  setConvFilterAlgorithm('auto');
  setConvFilterChunk(64);
}

const rng = new Rng(12345);
function randn(n: number): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, 1);
}

/** Runs `fn` on `backend` and returns its outputs as plain arrays (everything else disposed). */
async function on(backend: 'wasm' | 'cpu', fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const list = Array.isArray(outs) ? outs : [outs];
  const data = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  return data;
}

function convShapes(c: ConvCase): { outShape: [number, number, number, number] } {
  const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [c.kh, c.kw, c.ci, c.co], c.stride, 1, c.pad as 'same');
  return { outShape: info.outShape };
}

before(async () => {
  if (!process.env[DW_CHILD]) await useBackend('wasm');
});

for (const c of CASES) {
  maybeTest(`conv2d dx and dW match cpu: ${c.name}`, async () => {
    const { outShape } = convShapes(c);
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(c.kh * c.kw * c.ci * c.co);
    const dys = randn(outShape.reduce((a, b) => a * b, 1));
    const run = () => {
      const x = tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]);
      const w = tf.tensor4d(ws, [c.kh, c.kw, c.ci, c.co]);
      const dy = tf.tensor4d(dys, outShape);
      const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
      const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      // The forward conv with the same padding (explicit/numeric pads must reach XNNPACK too).
      const y = tf.conv2d(x, w, c.stride, c.pad as 'same');
      return [dx, dw, y];
    };
    const before = tf.memory().numTensors;
    const idsBefore = tf.engine().findBackend('wasm')!.numDataIds();
    const got: Array<[string, Float32Array[]]> = [];
    try {
      for (const [name, set] of DW_VARIANTS) {
        set();
        got.push([name, await on('wasm', run)]);
      }
    } finally {
      resetDw();
    }
    const want = await on('cpu', run);
    await tf.setBackend('wasm');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    // Views and intermediates inside the kernels are backend data, not engine tensors.
    assert.equal(tf.engine().findBackend('wasm')!.numDataIds(), idsBefore, 'wasm backend data leaked');
    const names = ['dx', 'dW', 'forward'];
    for (const [variant, outs] of got) {
      for (let i = 0; i < 3; i++) {
        const e = relError(outs[i], want[i]);
        assert.ok(e < 1e-5, `${names[i]} (dW ${variant}): rel err ${e}`);
      }
    }
  });
}

maybeTest('conv2d gradients through tf.grads (the path autodiff takes) match cpu', async () => {
  const xs = randn(4 * 10 * 10 * 5);
  const ws = randn(3 * 3 * 5 * 6);
  const run = () => {
    const x = tf.tensor4d(xs, [4, 10, 10, 5]);
    const w = tf.tensor4d(ws, [3, 3, 5, 6]);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1)));
    return tf.grads(f)([x, w]);
  };
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  await tf.setBackend('wasm');
  assert.ok(relError(got[0], want[0]) < 1e-5, `dx rel err ${relError(got[0], want[0])}`);
  assert.ok(relError(got[1], want[1]) < 1e-5, `dW rel err ${relError(got[1], want[1])}`);
});

maybeTest('maxPool 3×3 s2 pad 1 forward and gradient match cpu (ImageNet stem)', async () => {
  const xs = randn(2 * 9 * 10 * 4);
  const run = () => {
    const x = tf.tensor4d(xs, [2, 9, 10, 4]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 3, 2, 1), 1.5)))([x]);
    return [tf.maxPool(x, 3, 2, 1), g];
  };
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  await tf.setBackend('wasm');
  assert.ok(relError(got[0], want[0]) < 1e-6);
  assert.ok(relError(got[1], want[1]) < 1e-6);
});

for (const relu of [false, true]) {
  for (const shape of [
    [6, 5, 7, 8],
    [10, 12],
  ]) {
    maybeTest(`fused BatchNorm${relu ? '+ReLU' : ''} [${shape}] on wasm matches the composite on cpu (forward and gradient)`, async () => {
      const size = shape.reduce((a, b) => a * b, 1);
      const C = shape[shape.length - 1];
      // A large mean relative to the spread checks the numerics of the statistics.
      const xs = randn(size).map((v) => 3 + 0.5 * v);
      const ss = randn(C).map((v) => 1 + 0.3 * v);
      const os = randn(C).map((v) => 0.2 * v);
      const rs = randn(size);
      const run = (fused: boolean) => () => {
        const x = tf.tensor(xs, shape);
        const scale = tf.tensor1d(ss);
        const offset = tf.tensor1d(os);
        const r = tf.tensor(rs, shape);
        const bn = fused ? batchNormTrain : batchNormTrainComposite;
        const f = (a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => tf.sum(tf.mul(bn(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-5, relu).y, r));
        const grads = tf.grads(f)([x, scale, offset]);
        const { y, mean, variance } = bn(x, scale, offset, 1e-5, relu);
        return [y, mean, variance, ...grads];
      };
      assert.ok(hasFusedBatchNorm(), 'the fused kernel is registered for wasm');
      const got = await on('wasm', run(true));
      await tf.setBackend('cpu');
      assert.ok(!hasFusedBatchNorm(), 'cpu keeps the composite reference');
      const want = await on('cpu', run(false));
      await tf.setBackend('wasm');
      const names = ['y', 'mean', 'variance', 'dx', 'dscale', 'doffset'];
      for (let i = 0; i < names.length; i++) {
        const e = relError(got[i], want[i]);
        assert.ok(e < 1e-5, `${names[i]}: rel err ${e}`);
      }
    });
  }
}

maybeTest('fused BatchNorm leaks no tensors across training-style calls', async () => {
  await tf.setBackend('wasm');
  const x = tf.randomNormal([4, 3, 3, 5]);
  const scale = tf.variable(tf.ones([5]) as tf.Tensor1D);
  const offset = tf.variable(tf.zeros([5]) as tf.Tensor1D);
  const counts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(() => tf.sum(batchNormTrain(x, scale as tf.Tensor1D, offset as tf.Tensor1D, 1e-5, true).y) as tf.Scalar);
    value.dispose();
    tf.dispose(grads);
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(counts, [counts[0], counts[0], counts[0]]);
  tf.dispose([x, scale, offset]);
});

maybeTest('BatchNorm running statistics on wasm (one kernel call) match the tfjs-op formula on cpu: rank 2 and 4, n = 1, consecutive calls', async () => {
  await compareWithCpu('wasm', 8);
});

maybeTest('a BatchNorm layer trained 4 steps on wasm ends with the running statistics and num_batches_tracked of cpu', async () => {
  await compareLayerWithCpu('wasm', [4, 3, 3, 8], 4, 22);
  await compareLayerWithCpu('wasm', [6, 70], 4, 23);
});

GROUPED_SHAPES.forEach((shape, k) => {
  for (const groups of GROUPS) {
    const relu = (k + groups) % 2 === 1;
    maybeTest(`grouped BatchNorm${relu ? '+ReLU' : ''} [${shape}], groups ${groups}, on wasm matches the composite on cpu on each group (forward and gradient)`, async () => {
      await compareGroupedWithCpu('wasm', shape, groups, relu, 90 + 3 * k + groups);
    });
  }
});

maybeTest('grouped BatchNorm: a backend whose kernel has not declared groups (as wasm+onednn replaces it) runs it once per group, with the same result', async () => {
  await tf.setBackend('wasm');
  const declared = tf.getKernel(FUSED_BATCH_NORM_KERNEL, 'wasm')!;
  const calls: Array<{ groups: unknown; batch: number }> = [];
  // Another kernel under the same name, as oneDNN's: it knows nothing of groups.
  const stranger = ((args: { inputs: { x: tf.TensorInfo }; attrs: { groups?: number } }) => {
    calls.push({ groups: args.attrs.groups, batch: args.inputs.x.shape[0] });
    if ((args.attrs.groups ?? 1) !== 1) throw new Error('the fallback handed groups to a kernel that has not declared them');
    return declared.kernelFunc(args as never);
  }) as unknown as tf.KernelFunc;
  const shape = [12, 2, 3, 7];
  const inputs = groupedInputs(shape, 4, 97);
  const want = await runGrouped(inputs, 4, true, false);
  assert.ok(hasGroupedBatchNorm());
  tf.unregisterKernel(FUSED_BATCH_NORM_KERNEL, 'wasm');
  tf.registerKernel({ ...declared, kernelFunc: stranger });
  try {
    assert.ok(hasFusedBatchNorm() && !hasGroupedBatchNorm(), 'a replaced kernel is no longer the declared one');
    const before = tf.memory().numTensors;
    const got = await runGrouped(inputs, 4, true, false);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    // Forward, then the forward again inside tf.grads: 4 calls of 3 rows each time.
    assert.deepEqual(calls, Array(8).fill({ groups: 1, batch: 3 }));
    assert.deepEqual(got.statsShape, [4, 7]);
    OUTPUTS.forEach((name, i) => assert.ok(relError(got.values[i], want.values[i]) < 1e-6, `${name}: fallback vs grouped kernel rel err ${relError(got.values[i], want.values[i])}`));
  } finally {
    tf.unregisterKernel(FUSED_BATCH_NORM_KERNEL, 'wasm');
    tf.registerKernel(declared);
  }
  assert.ok(hasGroupedBatchNorm(), 'the declared kernel back: grouped again');
  assert.ok(tf.getKernel(FUSED_BATCH_NORM_GRAD_KERNEL, 'wasm'));
});

maybeTest('BatchNorm running statistics on wasm with [G, C] statistics (one kernel call) equal G consecutive calls, num_batches_tracked + G', async () => {
  await compareGroupedStats('wasm', 71);
});

maybeTest('a BatchNorm layer with groups on wasm: output and running statistics of one call per part on cpu', async () => {
  await compareGroupedLayerWithCpu('wasm', [8, 3, 3, 6], 4, 81);
  await compareGroupedLayerWithCpu('wasm', [12, 70], 2, 82);
});

GROUPED_SHAPES.forEach((shape, k) => {
  for (const groups of [1, 4]) {
    maybeTest(`BatchNorm + residual [${shape}], groups ${groups}, with and without ReLU, on wasm matches BN, Add, ReLU on cpu (forward and gradient, dResidual too)`, async () => {
      for (const relu of [true, false]) await compareGroupedWithCpu('wasm', shape, groups, relu, 140 + 3 * k + groups, true);
    });
  }
});

maybeTest('BatchNorm + residual + ReLU on wasm at a ResNet-18 shape [4, 8, 8, 64]', async () => {
  await compareGroupedWithCpu('wasm', [4, 8, 8, 64], 1, true, 150, true);
});

maybeTest('BatchNorm + residual: a kernel registered in wasm\'s place that has not declared the residual takes the fallback (no residual, no ReLU in the kernel), with the same result', async () => {
  const calls = await compareResidualFallback('wasm', [[8, 3, 3, 5], [12, 9]], 160);
  assert.ok(calls.length > 0 && calls.every((c) => !c.residual && !c.relu), 'the fallback calls the kernel without residual and without ReLU');
});

maybeTest('the profiler (bench/op-timer.ts wraps kernelFunc in place) keeps the declared grouped and residual BatchNorm, so it profiles the path training runs', async () => {
  await tf.setBackend('wasm');
  const seen: boolean[] = [];
  await timeOps(async () => {
    seen.push(hasGroupedBatchNorm(), hasResidualBatchNorm());
  });
  assert.deepEqual(seen, [true, true]);
  assert.ok(hasGroupedBatchNorm() && hasResidualBatchNorm());
});

maybeTest('BatchNorm + residual on wasm: a residual of another shape is a clear error', async () => {
  await tf.setBackend('wasm');
  const x = tf.zeros([4, 3]);
  const scale = tf.ones([3]) as tf.Tensor1D;
  const offset = tf.zeros([3]) as tf.Tensor1D;
  const wrong = tf.zeros([3, 4]);
  assert.throws(() => batchNormTrain(x, scale, offset, 1e-5, true, { residual: wrong }), /residual has shape \[3,4\], expected x's \[4,3\]/);
  assert.throws(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset, residual: wrong }, { varianceEpsilon: 1e-5, relu: true, residual: true }), /on wasm: residual has shape \[3,4\], expected x's \[4,3\]/);
  tf.dispose([x, scale, offset, wrong]);
});

/** dW of every algorithm on a few shapes (one of each path), at the thread count of this child. */
async function dwChild(spec: string): Promise<void> {
  const [threads, file] = [Number(spec.split(':')[0]), spec.slice(spec.indexOf(':') + 1)];
  const report = await initBackend({ force: 'wasm', env: {}, threads });
  const r = new Rng(7);
  const out: Record<string, number[]> = {};
  const shapes: ConvCase[] = [
    { name: '3×3 s1 16²', n: 5, h: 16, w: 16, ci: 12, co: 16, kh: 3, kw: 3, stride: 1, pad: 1 },
    { name: '3×3 s2 7² → 4², Co 128', n: 5, h: 7, w: 7, ci: 6, co: 128, kh: 3, kw: 3, stride: 2, pad: 1 },
    { name: '1×1 s2', n: 6, h: 9, w: 8, ci: 10, co: 12, kh: 1, kw: 1, stride: 2, pad: 0 },
  ];
  for (const c of shapes) {
    const { outShape } = convShapes(c);
    const x = tf.tensor4d(r.fillNormal(new Float32Array(c.n * c.h * c.w * c.ci), 0, 1), [c.n, c.h, c.w, c.ci]);
    const dy = tf.tensor4d(r.fillNormal(new Float32Array(outShape.reduce((a, b) => a * b, 1)), 0, 1), outShape);
    for (const algo of ['conv', 'gemm', 'im2col', 'auto'] as FilterAlgorithm[]) {
      setConvFilterAlgorithm(algo, algo === 'auto' ? {} : { gemmChunk: 2 });
      const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [c.kh, c.kw, c.ci, c.co] };
      const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      out[`${c.name} ${algo}`] = Array.from(dw.dataSync());
      dw.dispose();
    }
    tf.dispose([x, dy]);
  }
  fs.writeFileSync(file, JSON.stringify({ threads: report.threads, detail: report.detail, out }));
}

if (process.env[DW_CHILD]) {
  dwChild(process.env[DW_CHILD]!).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  test('every dW algorithm computes the same with 1 and 2 XNNPACK threads', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasm-dw-'));
    try {
      const results = [1, 2].map((threads) => {
        const file = path.join(dir, `${threads}.json`);
        const r = spawnSync(process.execPath, [__filename], { env: { ...process.env, [DW_CHILD]: `${threads}:${file}` }, encoding: 'utf8', timeout: 120_000 });
        assert.equal(r.status, 0, `child with ${threads} thread(s) failed: ${r.stderr}`);
        return JSON.parse(fs.readFileSync(file, 'utf8')) as { threads: number; detail: string; out: Record<string, number[]> };
      });
      assert.equal(results[0].threads, 1, results[0].detail);
      assert.equal(results[1].threads, 2, results[1].detail);
      for (const key of Object.keys(results[0].out)) {
        const e = relError(results[1].out[key], results[0].out[key]);
        assert.ok(e < 1e-6, `${key}: 1 vs 2 threads differ by ${e}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
