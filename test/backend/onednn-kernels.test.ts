import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../lib/backend';
import { defaultAddonPath, installOnednnKernels, kernelStats, loadAddon, onednnCandidate, onednnKernelsInstalled, uninstallOnednnKernels } from '../../lib/backend/onednn';
import { ntXent } from '../../lib/losses';
import { batchNormTrain, batchNormTrainComposite, FUSED_BATCH_NORM_KERNEL, hasGroupedBatchNorm, hasResidualBatchNorm } from '../../lib/backend/batchnorm-op';
import { MlpHead, ResNet, resnet18, resnet50 } from '../../lib/models';
import { Rng } from '../../lib/util/rng';
import { type ConvCase, relError } from '../helpers';
import { compareSteps, lossAndGrads, StepResult } from './train-step';
import { compareLayerWithCpu, compareWithCpu } from './bn-running-stats';
import { compareGroupedWithCpu, GROUPED_SHAPES, GROUPS } from './bn-grouped';
import { convAlgorithm } from '../../lib/backend/onednn/kernels';
import { CONV_ALGORITHM } from '../../lib/backend/onednn/addon';
import { threadedPoolSize } from '../../lib/backend/wasm/threaded';
import { CONV_BN_EVAL_KERNEL, convBnEval, hasConvBnEvalKernel } from '../../lib/backend/conv-bn-op';

/**
 * The `wasm+onednn` backend (lib/backend/onednn, native/onednn): every oneDNN kernel against the
 * `cpu` backend, whole training steps against the plain `wasm` backend, leaks over 100 steps,
 * and the fallback when the addon is missing. Skipped only where the addon is not built and
 * CI is unset (CI installs libdnnl-dev and builds it, so there a missing addon fails).
 */
const built = fs.existsSync(defaultAddonPath());
const skip = !built && !process.env.CI ? 'native/onednn addon not built (needs libdnnl-dev; node scripts/build-native.mjs)' : false;


// ResNet-18/50 layer shapes (channels scaled down where the spatial size is large), odd sizes.
const CASES: ConvCase[] = [
  { name: 'CIFAR stem 3×3 s1 pad 1, Ci 3', n: 4, h: 32, w: 32, ci: 3, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'ImageNet stem 7×7 s2 pad 3, odd 37×35', n: 2, h: 37, w: 35, ci: 3, co: 16, k: 7, stride: 2, pad: 3 },
  { name: 'basic block 3×3 s1 pad 1, 64→64', n: 3, h: 16, w: 16, ci: 64, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'basic block 3×3 s2 pad 1, 64→128, even', n: 3, h: 16, w: 16, ci: 64, co: 128, k: 3, stride: 2, pad: 1 },
  { name: '3×3 s2 pad 1, odd 9×11', n: 3, h: 9, w: 11, ci: 24, co: 40, k: 3, stride: 2, pad: 1 },
  { name: '1×1 s2 downsample 64→128', n: 3, h: 16, w: 16, ci: 64, co: 128, k: 1, stride: 2, pad: 0 },
  { name: '1×1 s2 downsample, odd 7×7', n: 2, h: 7, w: 7, ci: 32, co: 48, k: 1, stride: 2, pad: 0 },
  { name: 'bottleneck 1×1 s1 256→64', n: 2, h: 8, w: 8, ci: 256, co: 64, k: 1, stride: 1, pad: 0 },
  { name: 'bottleneck 1×1 s1 64→256', n: 2, h: 8, w: 8, ci: 64, co: 256, k: 1, stride: 1, pad: 'valid' },
  { name: 'layer4 3×3 s1 pad 1 at 4×4, 256→256', n: 2, h: 4, w: 4, ci: 256, co: 256, k: 3, stride: 1, pad: 1 },
  { name: "3×3 s2 'same', even (tfjs pads 0/1)", n: 3, h: 10, w: 10, ci: 8, co: 12, k: 3, stride: 2, pad: 'same' },
  { name: "5×5 s2 'same', odd 11×9", n: 2, h: 11, w: 9, ci: 4, co: 6, k: 5, stride: 2, pad: 'same' },
  { name: '3×3 s2 valid, odd', n: 2, h: 9, w: 9, ci: 5, co: 7, k: 3, stride: 2, pad: 'valid' },
  { name: '3×3 s2 pad 1, 8×8 → 4×4, 32→48 (forward in the blocked layout)', n: 3, h: 8, w: 8, ci: 32, co: 48, k: 3, stride: 2, pad: 1 },
  { name: '3×2 non-square, strides [2,1], explicit [[1,2],[0,1]]', n: 2, h: 9, w: 8, ci: 3, co: 5, k: [3, 2], stride: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: '3×3 s1 pad 3 (pad ≥ kernel)', n: 2, h: 5, w: 6, ci: 3, co: 4, k: 3, stride: 1, pad: 3 },
  // Our Winograd F(2×2, 3×3) (2×2 output tiles no more than half the channels): the ResNet-18
  // shape, edge tiles, pads 0 (backward data then pads 2) and asymmetric pads.
  { name: 'F(2×2) Winograd: layer4 3×3 at 4×4, 512→512', n: 3, h: 4, w: 4, ci: 512, co: 512, k: 3, stride: 1, pad: 1 },
  { name: 'F(2×2) Winograd, odd 5×3 (edge tiles), 40→36', n: 2, h: 5, w: 3, ci: 40, co: 36, k: 3, stride: 1, pad: 1 },
  { name: 'F(2×2) Winograd, valid 6×7, 48→40', n: 1, h: 6, w: 7, ci: 48, co: 40, k: 3, stride: 1, pad: 'valid' },
  { name: 'F(2×2) Winograd, explicit pads [[1,2],[0,1]], 32→48', n: 2, h: 4, w: 5, ci: 32, co: 48, k: 3, stride: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  // Our F(4×4, 3×3) (tiles between half the channels and the channels): the ResNet-18 4×4 layer's
  // proportions at fewer channels, partial tiles, pads 0, asymmetric pads.
  { name: 'F(4×4) ours: 4×4, 64→64, 64 tiles', n: 16, h: 4, w: 4, ci: 64, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'F(4×4) ours, odd 7×5 (partial tiles), 40→48', n: 3, h: 7, w: 5, ci: 40, co: 48, k: 3, stride: 1, pad: 1 },
  { name: 'F(4×4) ours, valid 9×7, 48→40', n: 3, h: 9, w: 7, ci: 48, co: 40, k: 3, stride: 1, pad: 'valid' },
  { name: 'F(4×4) ours, explicit pads [[1,2],[0,1]], 40→40', n: 3, h: 6, w: 5, ci: 40, co: 40, k: 3, stride: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  // Many tiles with unequal pads: oneDNN's F(4×4) got dx wrong here (relative error 1.4), so direct.
  { name: '3×3 s1 explicit pads [[0,1],[0,1]], 32→32, 64 tiles', n: 4, h: 9, w: 9, ci: 32, co: 32, k: 3, stride: 1, pad: [[0, 0], [0, 1], [0, 1], [0, 0]] },
];

const TEST_OPTS = { winograd: true };
const rng = new Rng(2024);
function randn(n: number): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, 1);
}

async function on(backend: 'wasm' | 'cpu', fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const list = Array.isArray(outs) ? outs : [outs];
  const data = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  return data;
}

let report: Awaited<ReturnType<typeof initBackend>> | null = null;

before(async () => {
  if (skip) return;
  const r = await initBackend({ force: 'wasm+onednn', env: {}, threads: 2, candidates: [onednnCandidate()] });
  report = r;
  assert.equal(r.tfBackend, 'wasm');
  assert.ok(onednnKernelsInstalled());
  installOnednnKernels(loadAddon(), TEST_OPTS);
});

for (const c of CASES) {
  test(`oneDNN conv2d forward, dx and dW match cpu: ${c.name}`, { skip }, async () => {
    const [kh, kw] = Array.isArray(c.k) ? c.k : [c.k, c.k];
    const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [kh, kw, c.ci, c.co], c.stride, 1, c.pad as 'same');
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(kh * kw * c.ci * c.co);
    const dys = randn(info.outShape.reduce((a, b) => a * b, 1));
    const run = () => {
      const x = tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]);
      const w = tf.tensor4d(ws, [kh, kw, c.ci, c.co]);
      const dy = tf.tensor4d(dys, info.outShape);
      const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
      const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      return [tf.conv2d(x, w, c.stride, c.pad as 'same'), dx, dw];
    };
    const calls = { ...kernelStats.calls };
    const before = tf.memory().numTensors;
    const got = await on('wasm', run);
    const want = await on('cpu', run);
    await tf.setBackend('wasm');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    for (const k of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']) {
      assert.equal(kernelStats.calls[k], (calls[k] ?? 0) + 1, `${k} ran on oneDNN`);
    }
    ['forward', 'dx', 'dW'].forEach((name, i) => {
      const e = relError(got[i], want[i]);
      assert.ok(e < 1e-5, `${name}: rel err ${e}`);
    });
  });
}

for (const c of CASES) {
  test(`oneDNN FusedConv2D (bias, ReLU: the evaluation-mode conv + BatchNorm) matches cpu: ${c.name}`, { skip }, async () => {
    const [kh, kw] = Array.isArray(c.k) ? c.k : [c.k, c.k];
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(kh * kw * c.ci * c.co);
    const bs = randn(c.co);
    const run = () => {
      const x = tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]);
      const filter = tf.tensor4d(ws, [kh, kw, c.ci, c.co]);
      const bias = tf.tensor1d(bs);
      const f = (o: { bias?: tf.Tensor1D; activation?: 'relu' | 'linear' }) => tf.fused.conv2d({ x, filter, strides: c.stride, pad: c.pad as 'same', ...o });
      return [f({ bias, activation: 'relu' }), f({ bias }), f({ activation: 'relu' })];
    };
    const calls = kernelStats.calls['FusedConv2D'] ?? 0;
    const before = tf.memory().numTensors;
    const got = await on('wasm', run);
    const want = await on('cpu', run);
    await tf.setBackend('wasm');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.equal(kernelStats.calls['FusedConv2D'], calls + 3, 'all three ran on oneDNN');
    ['bias + relu', 'bias', 'relu'].forEach((name, i) => {
      const e = relError(got[i], want[i]);
      assert.ok(e < 1e-5, `${name}: rel err ${e}`);
    });
    assert.ok(got[0].some((v) => v === 0) && got[1].some((v) => v < 0), 'the ReLU clipped what the linear output has below zero');
  });
}

test('wasm+onednn runs oneDNN on the requested threads and the wasm pool on one (its spinning workers took cores from oneDNN)', { skip }, () => {
  assert.equal(report!.threads, 2);
  assert.equal(loadAddon().info().threads, 2);
  assert.equal(threadedPoolSize(), 1);
  assert.match(report!.detail, /wasm: SIMD, 1 thread;/);
});

// The evaluation-mode layer's contract takes one stride and a symmetric pad (torch.nn.Conv2d's).
const EVAL_CASES = CASES.filter((c) => typeof c.k === 'number' && typeof c.stride === 'number' && (typeof c.pad === 'number' || c.pad === 'valid'));

/** Random BatchNorm operands for Co channels: γ, β, μ ~ N(0, 1), σ² ~ U(0.2, 2). */
function bnOperands(co: number) {
  const variance = rng.fillUniform(new Float32Array(co), 0.2, 2);
  return { scale: randn(co), offset: randn(co), mean: randn(co), variance };
}

/** `run` on wasm (its oneDNN kernel calls counted, no tensor left behind) and on cpu (the composite). */
async function evalLayerOnBoth(run: () => tf.Tensor | tf.Tensor[]): Promise<{ got: Float32Array[]; want: Float32Array[]; calls: number }> {
  const calls = kernelStats.calls[CONV_BN_EVAL_KERNEL] ?? 0;
  const before = tf.memory().numTensors;
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  await tf.setBackend('wasm');
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  return { got, want, calls: (kernelStats.calls[CONV_BN_EVAL_KERNEL] ?? 0) - calls };
}

for (const c of EVAL_CASES) {
  test(`oneDNN evaluation-mode conv + BatchNorm (folded; + residual; + ReLU) matches the composite on cpu: ${c.name}`, { skip }, async () => {
    const k = c.k as number;
    const pad = c.pad === 'valid' ? 0 : (c.pad as number);
    const stride = c.stride as number;
    const out = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [k, k, c.ci, c.co], stride, 1, pad).outShape;
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(k * k * c.ci * c.co);
    const rs = randn(out.reduce((a, b) => a * b, 1));
    const bn = bnOperands(c.co);
    const run = () => {
      const inputs = {
        x: tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]),
        filter: tf.tensor4d(ws, [k, k, c.ci, c.co]),
        scale: tf.tensor1d(bn.scale),
        offset: tf.tensor1d(bn.offset),
        mean: tf.tensor1d(bn.mean),
        variance: tf.tensor1d(bn.variance),
      };
      const residual = tf.tensor4d(rs, out);
      const attrs = { strides: stride, pad, varianceEpsilon: 1e-5 };
      return [false, true].flatMap((withResidual) =>
        [true, false].map((relu) => convBnEval(withResidual ? { ...inputs, residual } : inputs, { ...attrs, relu })),
      );
    };
    const { got, want, calls } = await evalLayerOnBoth(run);
    assert.equal(calls, 4, 'all four ran on oneDNN');
    assert.ok(!hasConvBnEvalKernel('cpu'), 'cpu has no kernel: the reference is the composite');
    ['relu', 'linear', 'residual + relu', 'residual'].forEach((name, i) => {
      const e = relError(got[i], want[i]);
      assert.ok(e < 1e-5, `${name}: rel err ${e}`);
    });
    assert.ok(got[2].some((v) => v === 0) && got[3].some((v) => v < 0), 'the ReLU clipped what the linear output has below zero');
    assert.ok(relError(got[3].map((v, i) => v - got[1][i]), rs) < 1e-5, 'the residual was added (before the ReLU)');
  });
}

test('gradients through the evaluation-mode conv + BatchNorm kernel (x, filter, γ, β, μ, σ², residual) match the composite\'s on cpu', { skip }, async () => {
  for (const c of [EVAL_CASES.find((e) => e.name.startsWith('basic block 3×3 s1'))!, EVAL_CASES.find((e) => e.name.startsWith('3×3 s2 pad 1, odd'))!]) {
    const k = c.k as number;
    const pad = c.pad as number;
    const out = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [k, k, c.ci, c.co], c.stride as number, 1, pad).outShape;
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(k * k * c.ci * c.co);
    const rs = randn(out.reduce((a, b) => a * b, 1));
    const dys = randn(out.reduce((a, b) => a * b, 1));
    const bn = bnOperands(c.co);
    const run = () => {
      const f = (x: tf.Tensor, filter: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, residual: tf.Tensor) =>
        convBnEval(
          { x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, scale: scale as tf.Tensor1D, offset: offset as tf.Tensor1D, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D, residual: residual as tf.Tensor4D },
          { strides: c.stride as number, pad, varianceEpsilon: 1e-5, relu: true },
        );
      const args = [tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]), tf.tensor4d(ws, [k, k, c.ci, c.co]), ...[bn.scale, bn.offset, bn.mean, bn.variance].map((v) => tf.tensor1d(v)), tf.tensor4d(rs, out)];
      return tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)(args, tf.tensor4d(dys, out));
    };
    const { got, want, calls } = await evalLayerOnBoth(run);
    assert.equal(calls, 1, 'the forward ran on oneDNN');
    ['x', 'filter', 'scale', 'offset', 'mean', 'variance', 'residual'].forEach((name, i) => {
      const e = relError(got[i], want[i]);
      assert.ok(e < 1e-5, `${c.name}: d${name}: rel err ${e}`);
    });
  }
});

test('the evaluation-mode conv + BatchNorm refuses bad operands, naming them', { skip }, () => {
  const x = tf.zeros([2, 8, 8, 4]) as tf.Tensor4D;
  const filter = tf.zeros([3, 3, 4, 6]) as tf.Tensor4D;
  const v = tf.ones([6]) as tf.Tensor1D;
  const ok = { x, filter, scale: v, offset: v, mean: v, variance: v };
  const attrs = { strides: 1, pad: 1, varianceEpsilon: 1e-5, relu: true };
  assert.throws(() => convBnEval({ ...ok, mean: tf.ones([5]) as tf.Tensor1D }, attrs), /mean has shape \[5\], expected \[6\]/);
  assert.throws(() => convBnEval({ ...ok, residual: tf.zeros([2, 4, 4, 6]) as tf.Tensor4D }, attrs), /residual has shape \[2,4,4,6\], expected the output's \[2,8,8,6\]/);
  assert.throws(() => convBnEval({ ...ok, x: tf.zeros([2, 8, 8, 3]) as tf.Tensor4D }, attrs), /filter has 4 input channels, x has 3/);
  assert.throws(() => convBnEval(ok, { ...attrs, pad: -1 }), /pad must be an integer ≥ 0, got -1/);
  tf.dispose([x, filter, v]);
});

test('FusedConv2D with other activations or PReLU weights goes to the wasm kernel and still matches cpu', { skip }, async () => {
  const xs = randn(2 * 6 * 6 * 4);
  const ws = randn(3 * 3 * 4 * 5);
  const run = () => {
    const x = tf.tensor4d(xs, [2, 6, 6, 4]);
    const filter = tf.tensor4d(ws, [3, 3, 4, 5]);
    const bias = tf.tensor1d([0.1, -0.2, 0.3, 0.4, -0.5]);
    return [
      tf.fused.conv2d({ x, filter, strides: 1, pad: 'same', bias, activation: 'elu' }),
      tf.fused.conv2d({ x, filter, strides: 1, pad: 'same', bias, activation: 'prelu', preluActivationWeights: tf.scalar(0.1) }),
    ];
  };
  const delegated = kernelStats.delegated['FusedConv2D'] ?? 0;
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  assert.equal(kernelStats.delegated['FusedConv2D'], delegated + 2);
  got.forEach((g, i) => assert.ok(relError(g, want[i]) < 1e-5, `case ${i}: rel err ${relError(g, want[i])}`));
});

test('direct convolution (MIXMASK_ONEDNN_WINOGRAD=0) on 3×3 stride-1 ResNet-18 shapes matches cpu, and all three Winograds ran by default', { skip }, async () => {
  const addon = loadAddon();
  installOnednnKernels(addon, { ...TEST_OPTS, winograd: false });
  try {
    for (const [n, h, ci, co] of [
      [2, 16, 64, 64],
      [2, 8, 128, 128],
      [2, 4, 256, 256],
      [1, 4, 512, 512],
      [3, 9, 16, 24],
    ]) {
      const xs = randn(n * h * h * ci);
      const ws = randn(9 * ci * co);
      const dys = randn(n * h * h * co);
      const run = () => {
        const x = tf.tensor4d(xs, [n, h, h, ci]);
        const w = tf.tensor4d(ws, [3, 3, ci, co]);
        const dy = tf.tensor4d(dys, [n, h, h, co]);
        const attrs = { strides: 1, pad: 1, dataFormat: 'NHWC', dimRoundingMode: undefined };
        const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
        const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
        return [tf.conv2d(x, w, 1, 1), dx, dw];
      };
      const got = await on('wasm', run);
      const want = await on('cpu', run);
      await tf.setBackend('wasm');
      ['forward', 'dx', 'dW'].forEach((name, i) => {
        const e = relError(got[i], want[i]);
        assert.ok(e < 1e-5, `[${n},${h},${h},${ci}]→${co} ${name}: rel err ${e}`);
      });
    }
    // The per-case tests before this one ran with the default kernels: both Winograds, every direction.
    for (const k of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'FusedConv2D', CONV_BN_EVAL_KERNEL]) {
      assert.ok(kernelStats.impls[k].some((s) => /^wino_2x3:ours\+/.test(s)), `our F(2x2) Winograd ran for ${k}: ${kernelStats.impls[k]}`);
      assert.ok(kernelStats.impls[k].some((s) => /^wino_4x3:ours\+/.test(s)), `our F(4x4) Winograd ran for ${k}: ${kernelStats.impls[k]}`);
      if (k !== 'FusedConv2D' && k !== CONV_BN_EVAL_KERNEL) assert.ok(kernelStats.impls[k].some((s) => /^jit_wino_4x3:/.test(s)), `oneDNN's Winograd ran for ${k}: ${kernelStats.impls[k]}`);
    }
  } finally {
    installOnednnKernels(addon, TEST_OPTS);
  }
});

test('convolution algorithm by the measured rule: Winograd for 3×3 stride 1 with ≥ 32 channels; ours where the 2×2 tiles are no more than the channels (F(2×2) up to half), oneDNN\'s F(4×4) above; 16 channels, stride 2, 1×1, winograd: false and (for oneDNN\'s) unequal pads run direct', () => {
  const info = (ci: number, co: number, k = 3, stride = 1, n = 2, hw = 8) => tf.backend_util.computeConv2DInfo([n, hw, hw, ci], [k, k, ci, co], stride, 1, 'same');
  const { direct, onednnF4x4, oursF2x2, oursF4x4 } = CONV_ALGORITHM;
  assert.equal(convAlgorithm(info(64, 64), {}), oursF2x2, '2·4·4 = 32 tiles ≤ 64/2 (the boundary)');
  assert.equal(convAlgorithm(info(32, 32), {}), oursF4x4, '32 tiles: > 32/2, ≤ 32');
  assert.equal(convAlgorithm(info(32, 32, 3, 1, 3), {}), onednnF4x4, '48 tiles > 32 channels');
  assert.equal(convAlgorithm(info(64, 128), {}), oursF2x2, '32 tiles ≤ 64/2');
  assert.equal(convAlgorithm(info(64, 64, 3, 1, 32, 32), {}), onednnF4x4, 'ResNet-18 32×32×64 at batch 32: 8192 tiles');
  assert.equal(convAlgorithm(info(256, 256, 3, 1, 32, 8), {}), onednnF4x4, '8×8×256 at batch 32: 512 tiles > 256');
  assert.equal(convAlgorithm(info(512, 512, 3, 1, 32, 4), {}), oursF2x2, '4×4×512 at batch 32: 128 tiles');
  assert.equal(convAlgorithm(info(512, 512, 3, 1, 64, 4), {}), oursF2x2, '4×4×512 at batch 64: 256 tiles');
  assert.equal(convAlgorithm(info(512, 512, 3, 1, 65, 4), {}), oursF4x4);
  assert.equal(convAlgorithm(info(512, 512, 3, 1, 128, 4), {}), oursF4x4, '4×4×512 at batch 128: 512 tiles');
  assert.equal(convAlgorithm(info(512, 512, 3, 1, 129, 4), {}), onednnF4x4);
  assert.equal(convAlgorithm(info(128, 128, 3, 1, 128, 4), {}), onednnF4x4, 'width 16, 4×4×128 at batch 128');
  assert.equal(convAlgorithm(info(16, 16), {}), direct, 'width-16 stage: direct (Winograd ~2x slower there)');
  assert.equal(convAlgorithm(info(16, 32), {}), direct);
  assert.equal(convAlgorithm(info(32, 16), {}), direct);
  assert.equal(convAlgorithm(info(64, 64, 3, 2), {}), direct);
  assert.equal(convAlgorithm(info(64, 64, 1), {}), direct);
  assert.equal(convAlgorithm(info(64, 64), { winograd: false }), direct);
  const padded = (pad: [[number, number], [number, number], [number, number], [number, number]], n = 4) =>
    tf.backend_util.computeConv2DInfo([n, 9, 9, 32], [3, 3, 32, 32], 1, 1, pad as unknown as 'same');
  assert.equal(convAlgorithm(padded([[0, 0], [0, 1], [0, 1], [0, 0]]), {}), direct, 'unequal pads: not oneDNN F(4×4) (its dx was wrong)');
  assert.equal(convAlgorithm(padded([[0, 0], [1, 1], [0, 0], [0, 0]]), {}), onednnF4x4, 'equal pads per dimension');
  assert.equal(convAlgorithm(padded([[0, 0], [0, 1], [0, 1], [0, 0]], 1), {}), oursF2x2, 'few tiles: ours, which takes any pads ≤ 2');
});

test('BatchMatMul on oneDNN matches cpu for every transpose combination, batched and broadcast (delegated)', { skip }, async () => {
  for (const [B, M, K, N] of [
    [1, 32, 512, 512],
    [3, 5, 7, 9],
  ]) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const as = randn(B * M * K);
        const bs = randn(B * K * N);
        const run = () => tf.matMul(tf.tensor3d(as, ta ? [B, K, M] : [B, M, K]), tf.tensor3d(bs, tb ? [B, N, K] : [B, K, N]), ta, tb);
        const calls = kernelStats.calls['BatchMatMul'] ?? 0;
        const got = await on('wasm', run);
        const want = await on('cpu', run);
        await tf.setBackend('wasm');
        assert.equal(kernelStats.calls['BatchMatMul'], calls + 1);
        const e = relError(got[0], want[0]);
        assert.ok(e < 1e-5, `[${B},${M},${K},${N}] ta=${ta} tb=${tb}: rel err ${e}`);
      }
    }
  }
  // Rank 2 (what tf.matMul hands the kernel for the projection head) runs on oneDNN too.
  const a2 = randn(32 * 64);
  const b2 = randn(32 * 48);
  const run2 = () => tf.matMul(tf.tensor2d(a2, [32, 64]), tf.tensor2d(b2, [32, 48]), true, false);
  const calls = kernelStats.calls['BatchMatMul'] ?? 0;
  const got2 = await on('wasm', run2);
  const want2 = await on('cpu', run2);
  await tf.setBackend('wasm');
  assert.equal(kernelStats.calls['BatchMatMul'], calls + 1);
  assert.ok(relError(got2[0], want2[0]) < 1e-5);
  // Broadcast batch dimensions are delegated to the stock kernel.
  const as = randn(2 * 3 * 4);
  const bs = randn(4 * 5);
  const run = () => tf.matMul(tf.tensor3d(as, [2, 3, 4]), tf.tensor3d(bs, [1, 4, 5]));
  const delegated = kernelStats.delegated['BatchMatMul'] ?? 0;
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  await tf.setBackend('wasm');
  assert.equal(kernelStats.delegated['BatchMatMul'], delegated + 1);
  assert.ok(relError(got[0], want[0]) < 1e-5);
});

test('dilated conv2d is delegated to the stock wasm kernel and still matches cpu', { skip }, async () => {
  const xs = randn(2 * 9 * 9 * 3);
  const ws = randn(3 * 3 * 3 * 4);
  const run = () => tf.conv2d(tf.tensor4d(xs, [2, 9, 9, 3]), tf.tensor4d(ws, [3, 3, 3, 4]), 1, 'same', 'NHWC', 2);
  const delegated = kernelStats.delegated['Conv2D'] ?? 0;
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  await tf.setBackend('wasm');
  assert.equal(kernelStats.delegated['Conv2D'], delegated + 1);
  assert.ok(relError(got[0], want[0]) < 1e-5);
});

test('conv2d gradients through tf.grads match cpu (stride 2, pad 1)', { skip }, async () => {
  const xs = randn(4 * 10 * 10 * 5);
  const ws = randn(3 * 3 * 5 * 6);
  const run = () => {
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1)));
    return tf.grads(f)([tf.tensor4d(xs, [4, 10, 10, 5]), tf.tensor4d(ws, [3, 3, 5, 6])]);
  };
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  await tf.setBackend('wasm');
  assert.ok(relError(got[0], want[0]) < 1e-5, `dx rel err ${relError(got[0], want[0])}`);
  assert.ok(relError(got[1], want[1]) < 1e-5, `dW rel err ${relError(got[1], want[1])}`);
});

for (const relu of [false, true]) {
  for (const shape of [
    [6, 5, 7, 8],
    [4, 16, 16, 64],
    [10, 12],
  ]) {
    test(`oneDNN BatchNorm${relu ? '+ReLU' : ''} [${shape}] matches the composite on cpu (forward and gradient)`, { skip }, async () => {
      const size = shape.reduce((a, b) => a * b, 1);
      const C = shape[shape.length - 1];
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
      const calls = kernelStats.calls['MixMaskFusedBatchNormTrainGrad'] ?? 0;
      const got = await on('wasm', run(true));
      const want = await on('cpu', run(false));
      await tf.setBackend('wasm');
      assert.equal(kernelStats.calls['MixMaskFusedBatchNormTrainGrad'], calls + 1, 'the gradient ran on oneDNN');
      ['y', 'mean', 'variance', 'dx', 'dscale', 'doffset'].forEach((name, i) => {
        const e = relError(got[i], want[i]);
        assert.ok(e < 1e-5, `${name}: rel err ${e}`);
      });
    });
  }
}

// oneDNN 2.6's generated sgemm kernels (gemm:jit: our Winograd's products) point rsp into the
// heap while they run, so a signal landing then corrupts the heap (oneDNN issue #4845); the addon
// makes signals wait for the end of each call (native/onednn/src/addon.cc, SignalsWait). A child
// runs both of our Winograds in every direction under the V8 profiler (SIGPROF every 100 µs)
// while a worker thread sends the process SIGUSR2 as fast as it can: before the fix
// `node --cpu-prof` alone aborted within a second ("corrupted size vs. prev_size").
const SIGNAL_CHILD = `
const { Worker } = require('node:worker_threads');
const m = { exports: {} };
process.dlopen(m, process.argv[1]);
const a = m.exports;
a.setThreads(2);
let got = 0;
process.on('SIGUSR2', () => { got++; });
const storm = new Worker("const { parentPort } = require('node:worker_threads'); let on = true; parentPort.on('message', () => { on = false; }); (function loop() { for (let i = 0; i < 20; i++) process.kill(process.pid, 'SIGUSR2'); if (on) setImmediate(loop); else parentPort.close(); })();", { eval: true });
const impls = new Set();
setTimeout(() => {
  const [N, H, C] = [32, 4, 256];
  const dims = [N, H, H, C, C, 3, 3, H, H, 1, 1, 1, 1, 1, 1];
  const x = new Float32Array(N * H * H * C).map(() => Math.random() - 0.5);
  const w = new Float32Array(9 * C * C).map(() => Math.random() - 0.5);
  const y = new Float32Array(x.length), dw = new Float32Array(w.length);
  for (let rep = 0; rep < 40; rep++)
    for (const algo of [2, 3]) {
      impls.add(a.conv(1, x, w, y, dims, algo));
      impls.add(a.conv(2, y, w, x, dims, algo));
      impls.add(a.conv(3, x, y, dw, dims, algo));
      x.set(x.map((v) => Math.tanh(v)));
    }
  storm.postMessage('stop');
  setTimeout(() => { console.log(JSON.stringify({ got, impls: [...impls] })); process.exit(0); }, 50);
}, 20);
`;

test('signals during oneDNN calls (the V8 profiler, a signal storm) leave the heap intact', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-signals-'));
  try {
    const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', '-e', SIGNAL_CHILD, defaultAddonPath()], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.signal, null, `child killed by ${r.signal}: ${r.stderr.slice(-400)}`);
    assert.equal(r.status, 0, r.stderr.slice(-400));
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { got: number; impls: string[] };
    assert.ok(out.impls.some((i) => i.endsWith('gemm:jit')), `the products ran in gemm:jit: ${out.impls}`);
    assert.ok(out.got > 0, 'SIGUSR2 reached the process');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// The gradient of a BatchNorm+ReLU without residual, given the forward's offset, recomputes the
// ReLU mask from x instead of reading y (one tensor fewer in both passes). It must be the mask
// the forward applied, bit for bit, also for values on the boundary: here offsets put about half
// of every channel near 0, and y handed to that path is garbage (it must not be read).
test('oneDNN BatchNorm+ReLU gradient: the mask recomputed from x is the forward\'s (bit for bit against the y-read mask; y not read)', { skip }, () => {
  const addon = loadAddon();
  for (const [rows, C] of [
    [6 * 5 * 7, 8],
    [64 * 16 * 16, 64], // 2^20 elements: both threads
    [2 * 4 * 4, 512],
  ]) {
    const n = rows * C;
    const x = Float32Array.from(randn(n), (v) => 3 + 0.5 * v);
    const scale = Float32Array.from(randn(C), (v) => 1 + 0.3 * v);
    const offset = Float32Array.from(randn(C), (v) => 0.01 * v); // y ≈ x̂·scale: half the rows near 0
    const dy = Float32Array.from(randn(n));
    const y = new Float32Array(n);
    const mean = new Float32Array(C);
    const variance = new Float32Array(C);
    addon.bnForward(x, scale, offset, y, mean, variance, rows, C, 1e-5, true);
    const zeros = y.filter((v) => v === 0).length;
    assert.ok(zeros > 0.3 * n && zeros < 0.7 * n, `${zeros} of ${n} outputs clipped`);
    const grad = (yIn: Float32Array, off?: Float32Array) => {
      const out = { dx: new Float32Array(n), dScale: new Float32Array(C), dOffset: new Float32Array(C) };
      addon.bnBackward(dy, x, yIn, mean, variance, scale, out.dx, out.dScale, out.dOffset, rows, C, 1e-5, true, undefined, off);
      return out;
    };
    const fromY = grad(y);
    const fromX = grad(new Float32Array(n).fill(1), offset);
    for (const k of ['dx', 'dScale', 'dOffset'] as const) {
      const bad = fromY[k].findIndex((v, i) => !Object.is(v, fromX[k][i]));
      assert.equal(bad, -1, `[${rows}, ${C}] ${k}[${bad}]: ${fromY[k][bad]} (mask from y) vs ${fromX[k][bad]} (from x)`);
    }
    // And the y-read path does read y: all ones (no mask) changes dx.
    assert.ok(grad(new Float32Array(n).fill(1)).dx.some((v, i) => v !== fromY.dx[i]));
  }
});

// Groups (MoCo's shuffle-BN keys, the online encoder's views in one pass) and the residual
// (BN + residual + ReLU at the end of a ResNet block) run in the oneDNN kernels, on views of
// the tensors' memory: no split, concat or separate add (lib/backend/batchnorm-op.ts).
GROUPED_SHAPES.forEach((shape, k) => {
  for (const groups of GROUPS) {
    test(`oneDNN BatchNorm [${shape}], groups ${groups}, with and without residual and ReLU, matches the per-group composite on cpu; every call ran on oneDNN`, { skip }, async () => {
      for (const residual of [false, true]) {
        for (const relu of [true, false]) {
          const calls = { ...kernelStats.calls };
          const delegated = { ...kernelStats.delegated };
          await compareGroupedWithCpu('wasm', shape, groups, relu, 300 + 10 * k + 3 * groups + (residual ? 1 : 0), residual);
          for (const name of [FUSED_BATCH_NORM_KERNEL, 'MixMaskFusedBatchNormTrainGrad']) {
            assert.ok((kernelStats.calls[name] ?? 0) > (calls[name] ?? 0), `${name} ran on oneDNN`);
            assert.equal(kernelStats.delegated[name] ?? 0, delegated[name] ?? 0, `${name} was not delegated`);
          }
        }
      }
    });
  }
});

test('oneDNN BatchNorm at ResNet-18 shapes: three views in one grouped call, BN + residual + ReLU, match cpu', { skip }, async () => {
  await compareGroupedWithCpu('wasm', [12, 8, 8, 64], 3, true, 330);
  await compareGroupedWithCpu('wasm', [12, 8, 8, 64], 3, true, 331, true);
  await compareGroupedWithCpu('wasm', [6, 16, 16, 16], 1, true, 332, true);
});

test('wasm+onednn declares grouped and residual BatchNorm while its kernels are installed, and wasm\'s own declaration holds again without them', { skip }, async () => {
  await tf.setBackend('wasm');
  assert.ok(hasGroupedBatchNorm() && hasResidualBatchNorm(), 'oneDNN kernels installed: declared');
  const addon = loadAddon();
  uninstallOnednnKernels();
  try {
    assert.notEqual(tf.getKernel(FUSED_BATCH_NORM_KERNEL, 'wasm'), undefined);
    assert.ok(hasGroupedBatchNorm() && hasResidualBatchNorm(), 'wasm\'s own kernels back: declared');
  } finally {
    installOnednnKernels(addon, TEST_OPTS);
  }
  assert.ok(hasGroupedBatchNorm() && hasResidualBatchNorm());
});

test('BatchNorm running statistics on wasm+onednn (the wasm kernel, one call) match cpu; a BatchNorm layer trained on oneDNN ends with cpu\'s statistics', { skip }, async () => {
  await compareWithCpu('wasm', 9);
  const calls = kernelStats.calls['MixMaskFusedBatchNormTrain'] ?? 0;
  await compareLayerWithCpu('wasm', [4, 6, 6, 16], 3, 24);
  assert.equal(kernelStats.calls['MixMaskFusedBatchNormTrain'], calls + 3, 'the forward ran on oneDNN');
});

/** The same step with the oneDNN kernels and with the plain wasm kernels they replace. */
async function bothWays(build: () => { backbone: ResNet; head: MlpHead }, x: Float32Array, shape: [number, number, number, number]): Promise<[StepResult, StepResult]> {
  const addon = loadAddon();
  const calls = kernelStats.calls['Conv2DBackpropFilter'] ?? 0;
  const got = await lossAndGrads('wasm', build, x, shape);
  assert.ok((kernelStats.calls['Conv2DBackpropFilter'] ?? 0) > calls, 'oneDNN kernels ran');
  uninstallOnednnKernels();
  try {
    return [got, await lossAndGrads('wasm', build, x, shape)];
  } finally {
    installOnednnKernels(addon, TEST_OPTS);
  }
}

test('ResNet-18 (CIFAR stem, width 16) + head + NT-Xent: one step on wasm+onednn matches wasm', { skip }, async () => {
  const shape: [number, number, number, number] = [8, 16, 16, 3];
  const x = new Rng(3).fillNormal(new Float32Array(8 * 16 * 16 * 3), 0, 1);
  const build = () => {
    const backbone = resnet18({ width: 16, seed: 5 });
    return { backbone, head: new MlpHead(backbone.featureDim, [64], 32, { seed: 6 }) };
  };
  const [got, want] = await bothWays(build, x, shape);
  // The same tolerance wasm itself meets against cpu (train-mode BN amplifies rounding).
  compareSteps(got, want, 1e-4);
});

test('ResNet-50 (ImageNet stem, width 8) step: every oneDNN kernel call matches the wasm kernel it replaces, on the same inputs', { skip }, async () => {
  // End-to-end gradients of this small ResNet-50 are too ill-conditioned to compare across
  // backends: perturbing the input by ±5e-8 (relative) moves plain wasm's own gradients by up to
  // 1e-1. So each kernel call of a real step is checked against the replaced kernel instead.
  await tf.setBackend('wasm');
  const addon = loadAddon();
  const names = ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', 'MixMaskFusedBatchNormTrain', 'MixMaskFusedBatchNormTrainGrad'];
  uninstallOnednnKernels();
  const stock = new Map(names.map((k) => [k, tf.getKernel(k, 'wasm')!]));
  installOnednnKernels(addon, TEST_OPTS);
  const mine = new Map(names.map((k) => [k, tf.getKernel(k, 'wasm')!]));
  const worst = new Map<string, number>();
  const calls = new Map<string, number>();
  for (const k of names) {
    tf.unregisterKernel(k, 'wasm');
    tf.registerKernel({
      kernelName: k,
      backendName: 'wasm',
      kernelFunc: ((args: { backend: BackendWasm }) => {
        const a = mine.get(k)!.kernelFunc(args as never) as tf.TensorInfo | tf.TensorInfo[];
        const b = stock.get(k)!.kernelFunc(args as never) as tf.TensorInfo | tf.TensorInfo[];
        const as = Array.isArray(a) ? a : [a];
        const bs = Array.isArray(b) ? b : [b];
        for (let i = 0; i < as.length; i++) {
          const e = relError(args.backend.typedArrayFromHeap(as[i]) as Float32Array, args.backend.typedArrayFromHeap(bs[i]) as Float32Array);
          worst.set(k, Math.max(worst.get(k) ?? 0, e));
          args.backend.disposeData(bs[i].dataId);
        }
        calls.set(k, (calls.get(k) ?? 0) + 1);
        return a;
      }) as unknown as tf.KernelFunc,
    });
  }
  try {
    const x = new Rng(4).fillNormal(new Float32Array(8 * 64 * 64 * 3), 0, 1);
    const backbone = resnet50({ width: 8, seed: 7 });
    const head = new MlpHead(backbone.featureDim, [32], 16, { seed: 8 });
    const build = () => ({ backbone, head });
    const r = await lossAndGrads('wasm', build, x, [8, 64, 64, 3]);
    assert.ok(Number.isFinite(r.loss));
  } finally {
    installOnednnKernels(addon, TEST_OPTS);
  }
  // 53 convolutions (+ 1 dilation-free stem) and 53 + 1 BatchNorms, each forward and backward.
  assert.ok((calls.get('Conv2D') ?? 0) >= 53 && (calls.get('Conv2DBackpropFilter') ?? 0) >= 53, `calls ${[...calls]}`);
  assert.ok((calls.get('MixMaskFusedBatchNormTrainGrad') ?? 0) >= 53, `calls ${[...calls]}`);
  for (const [k, e] of worst) assert.ok(e < 1e-5, `${k}: worst rel err ${e} over ${calls.get(k)} calls`);
});

test('100 SGD steps on wasm+onednn: tensor count and RSS stay flat', { skip }, async () => {
  await tf.setBackend('wasm');
  const backbone = resnet18({ width: 8, seed: 1 });
  const head = new MlpHead(backbone.featureDim, [32], 16, { seed: 2 });
  const vars = [...backbone.trainableVariables(), ...head.trainableVariables()];
  const opt = tf.train.momentum(0.05, 0.9);
  const x = tf.randomNormal([8, 16, 16, 3]) as tf.Tensor4D;
  const counts: number[] = [];
  const rss: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < 100; i++) {
    const cost = opt.minimize(() => {
      const z = head.apply(backbone.apply(x, true), true);
      const [a, b] = tf.split(z, [4, 4], 0) as [tf.Tensor2D, tf.Tensor2D];
      return tf.mean(ntXent(a, b, 0.5)) as tf.Scalar;
    }, true, vars);
    losses.push(cost!.dataSync()[0]);
    cost!.dispose();
    counts.push(tf.memory().numTensors);
    rss.push(process.memoryUsage().rss);
  }
  assert.deepEqual(new Set(counts.slice(1)).size, 1, `tensor counts ${counts.slice(0, 5)}…${counts.slice(-3)}`);
  assert.ok(losses.every(Number.isFinite), 'finite losses');
  // After warm-up (primitive cache, heap growth) RSS must not keep growing: steps 20→100 may
  // add at most 32 MiB (a leak of one activation per step would add far more).
  const growth = (rss[99] - rss[19]) / 2 ** 20;
  assert.ok(growth < 32, `RSS grew ${growth.toFixed(1)} MiB over steps 20–100`);
  opt.dispose();
  x.dispose();
  backbone.dispose();
  head.dispose();
});

test('small BatchNorms (below 2^17 elements: one thread) and large ones (the configured threads) both run on oneDNN and match cpu', { skip }, async () => {
  for (const shape of [[4, 3, 3, 8], [8, 16, 16, 64]]) {
    const delegated = { ...kernelStats.delegated };
    await compareGroupedWithCpu('wasm', shape, 1, true, 340 + shape[0]);
    for (const name of [FUSED_BATCH_NORM_KERNEL, 'MixMaskFusedBatchNormTrainGrad']) assert.equal(kernelStats.delegated[name] ?? 0, delegated[name] ?? 0, `[${shape}]: ${name} ran on oneDNN`);
  }
});

test('Add of two float32 tensors of one shape runs natively and matches cpu; broadcasting and int32 go to the wasm kernel', { skip }, async () => {
  const xs = randn(6 * 7 * 5 * 3);
  const ys = randn(6 * 7 * 5 * 3);
  const run = () => {
    const a = tf.tensor4d(xs, [6, 7, 5, 3]);
    const b = tf.tensor4d(ys, [6, 7, 5, 3]);
    return [tf.add(a, b), tf.add(a, tf.tensor1d([1, 2, 3])), tf.add(tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3, 4], 'int32')), tf.add(tf.zeros([0, 3]), tf.zeros([0, 3]))];
  };
  const calls = kernelStats.calls['Add'] ?? 0;
  const delegated = kernelStats.delegated['Add'] ?? 0;
  const got = await on('wasm', run);
  const want = await on('cpu', run);
  assert.equal(kernelStats.calls['Add'], calls + 2, 'the same-shape float32 sums ran natively (the empty one too)');
  assert.equal(kernelStats.delegated['Add'], delegated + 2, 'the broadcast and the int32 sum were delegated');
  got.forEach((g, i) => assert.deepEqual(Array.from(g), Array.from(want[i]), `output ${i} equals cpu's`));
});

test('a missing addon is a reported skip, and the chain falls through to the next backend', async () => {
  const missing = path.join(__dirname, 'no-such-dir', 'mixmask_onednn.node');
  const candidate = onednnCandidate({ addonPath: missing });
  const check = await candidate.check();
  assert.equal(check.ok, false);
  assert.match(check.reason, /native addon not built/);
  const fallback = { name: 'cpu', check: async () => ({ ok: true, reason: '' }), activate: async () => ({ detail: 'stand-in', threads: 1 }) };
  const r = await initBackend({ env: {}, candidates: [candidate, fallback] });
  assert.equal(r.name, 'cpu');
  assert.equal(r.attempts[0].status, 'skipped');
  assert.match(r.attempts[0].reason, /native addon not built/);
  await assert.rejects(initBackend({ force: 'wasm+onednn', env: {}, candidates: [candidate] }), /native addon not built/);
});

test('an addon file that is not a loadable binary is a reported skip, not a crash', async () => {
  const bad = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'onednn-')), 'mixmask_onednn.node');
  fs.writeFileSync(bad, 'not an ELF file');
  const check = await onednnCandidate({ addonPath: bad }).check();
  assert.equal(check.ok, false);
  assert.match(check.reason, /failed to load/);
});
