import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterGemm, chooseSplitK } from '../../lib/backend/webgpu/conv2d-backprop-filter';
import { DIRECT_MAX_IN_CHANNELS } from '../../lib/backend/webgpu/conv2d-backprop-input';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { tuning, type WebgpuBackendLike } from '../../lib/backend/webgpu/program';
import { Rng } from '../../lib/util/rng';
import { relError, useWebgpu } from '../helpers';

/**
 * Our webgpu convolution gradients (lib/backend/webgpu: dW and dx) against the cpu backend: relative error
 * < 1e-5 on every distinct convolution of ResNet-18 (CIFAR and ImageNet stems) and ResNet-50
 * (channels and strides as in the models, spatial sizes and batches cut down so that the cpu
 * reference stays fast), plus odd shapes: Cin = 3, stride 2 with odd sizes, K not a multiple of
 * the 32-wide tile, batch 1, and the split-K path with a short last chunk.
 */

const TOL = 1e-5;
let skip: string | null = null;

before(async () => {
  skip = await useWebgpu();
});

interface ConvCase {
  name: string;
  n: number;
  hw: number;
  ci: number;
  co: number;
  k: number;
  stride: number;
  pad: number | 'same' | 'valid';
}

const RESNET18: ConvCase[] = [
  { name: 'R18 CIFAR stem 3→64 3×3', n: 2, hw: 16, ci: 3, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'R18 ImageNet stem 3→64 7×7 s2', n: 1, hw: 20, ci: 3, co: 64, k: 7, stride: 2, pad: 3 },
  { name: 'R18 l1 64 3×3', n: 2, hw: 8, ci: 64, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'R18 l2 64→128 3×3 s2', n: 2, hw: 8, ci: 64, co: 128, k: 3, stride: 2, pad: 1 },
  { name: 'R18 l2 down 64→128 1×1 s2', n: 2, hw: 8, ci: 64, co: 128, k: 1, stride: 2, pad: 0 },
  { name: 'R18 l2 128 3×3', n: 2, hw: 4, ci: 128, co: 128, k: 3, stride: 1, pad: 1 },
  { name: 'R18 l3 128→256 3×3 s2', n: 2, hw: 4, ci: 128, co: 256, k: 3, stride: 2, pad: 1 },
  { name: 'R18 l3 down 128→256 1×1 s2', n: 2, hw: 4, ci: 128, co: 256, k: 1, stride: 2, pad: 0 },
  { name: 'R18 l3 256 3×3', n: 1, hw: 4, ci: 256, co: 256, k: 3, stride: 1, pad: 1 },
  { name: 'R18 l4 256→512 3×3 s2', n: 1, hw: 4, ci: 256, co: 512, k: 3, stride: 2, pad: 1 },
  { name: 'R18 l4 down 256→512 1×1 s2', n: 1, hw: 4, ci: 256, co: 512, k: 1, stride: 2, pad: 0 },
  { name: 'R18 l4 512 3×3', n: 1, hw: 2, ci: 512, co: 512, k: 3, stride: 1, pad: 1 },
];

/** torchvision's ResNet-50 (v1.5: the stride on the bottleneck's 3×3), minus the stem it shares with ResNet-18. */
const RESNET50: ConvCase[] = [
  { name: 'R50 l1 1×1 64→64', n: 1, hw: 6, ci: 64, co: 64, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l1 1×1 64→256 (also its downsample)', n: 1, hw: 6, ci: 64, co: 256, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l1 1×1 256→64', n: 1, hw: 6, ci: 256, co: 64, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l2 1×1 256→128', n: 1, hw: 6, ci: 256, co: 128, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l2 3×3 128 s2', n: 1, hw: 6, ci: 128, co: 128, k: 3, stride: 2, pad: 1 },
  { name: 'R50 l2 1×1 128→512', n: 1, hw: 4, ci: 128, co: 512, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l2 down 1×1 256→512 s2', n: 1, hw: 6, ci: 256, co: 512, k: 1, stride: 2, pad: 0 },
  { name: 'R50 l2 1×1 512→128', n: 1, hw: 4, ci: 512, co: 128, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l3 1×1 512→256', n: 1, hw: 4, ci: 512, co: 256, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l3 3×3 256 s2', n: 1, hw: 4, ci: 256, co: 256, k: 3, stride: 2, pad: 1 },
  { name: 'R50 l3 1×1 256→1024', n: 1, hw: 2, ci: 256, co: 1024, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l3 down 1×1 512→1024 s2', n: 1, hw: 4, ci: 512, co: 1024, k: 1, stride: 2, pad: 0 },
  { name: 'R50 l3 1×1 1024→256', n: 1, hw: 2, ci: 1024, co: 256, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l4 1×1 1024→512', n: 1, hw: 2, ci: 1024, co: 512, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l4 3×3 512 s2', n: 1, hw: 3, ci: 512, co: 512, k: 3, stride: 2, pad: 1 },
  { name: 'R50 l4 1×1 512→2048', n: 1, hw: 2, ci: 512, co: 2048, k: 1, stride: 1, pad: 0 },
  { name: 'R50 l4 down 1×1 1024→2048 s2', n: 1, hw: 2, ci: 1024, co: 2048, k: 1, stride: 2, pad: 0 },
  { name: 'R50 l4 1×1 2048→512', n: 1, hw: 1, ci: 2048, co: 512, k: 1, stride: 1, pad: 0 },
];

const ODD: ConvCase[] = [
  { name: 'Cout 6 (not a multiple of 4: scalar loads), stride 2, odd 7×7', n: 2, hw: 7, ci: 5, co: 6, k: 3, stride: 2, pad: 1 },
  { name: '1×1 stride 2 pad 0 on even 8×8 (three phases get no tap)', n: 2, hw: 8, ci: 4, co: 8, k: 1, stride: 2, pad: 0 },
  { name: '2×2 stride 2 valid, Cout 3', n: 1, hw: 6, ci: 4, co: 3, k: 2, stride: 2, pad: 'valid' },
  { name: 'Cin 4 (direct dx), 3×3 stride 2 even 8×8, Cout 12', n: 2, hw: 8, ci: 4, co: 12, k: 3, stride: 2, pad: 1 },
  { name: 'width 8 (dx tile 128×8), 3×3 stride 2, 9×9', n: 2, hw: 9, ci: 8, co: 8, k: 3, stride: 2, pad: 1 },
  { name: 'width 16 (dx tile 64×16), 3×3 stride 1, 6×6', n: 2, hw: 6, ci: 16, co: 16, k: 3, stride: 1, pad: 1 },
  { name: 'Cin 12 → Cout 20 (dx tile 64×16), 3×3 stride 2, 7×7', n: 2, hw: 7, ci: 12, co: 20, k: 3, stride: 2, pad: 1 },
  { name: 'Cin 3, stride 2, odd 9×9, Cout 5', n: 3, hw: 9, ci: 3, co: 5, k: 3, stride: 2, pad: 1 },
  { name: 'batch 1, 5×5 valid, Cin 7, Cout 33 (tiles not full)', n: 1, hw: 5, ci: 7, co: 33, k: 3, stride: 1, pad: 'valid' },
  { name: "stride 2 'same' (tfjs pads 0/1), 10×10", n: 2, hw: 10, ci: 6, co: 10, k: 3, stride: 2, pad: 'same' },
  { name: '1×1 stride 2 on odd 7×7, Cin 5', n: 2, hw: 7, ci: 5, co: 9, k: 1, stride: 2, pad: 0 },
  { name: '7×7 stride 2 pad 3, odd 15×15', n: 2, hw: 15, ci: 3, co: 8, k: 7, stride: 2, pad: 3 },
];

const rng = new Rng(21);
function randn(n: number): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, 1);
}

function attrsOf(c: ConvCase) {
  return { strides: c.stride, pad: c.pad, dataFormat: 'NHWC' as const, dimRoundingMode: undefined, filterShape: [c.k, c.k, c.ci, c.co] as [number, number, number, number] };
}

/** dW and dx of one case on `backend`, through the registered kernels; values read back, nothing left. */
async function grads(backend: string, c: ConvCase, data: { xs: Float32Array; ws: Float32Array; dys: Float32Array }, outShape: number[]) {
  await tf.setBackend(backend);
  const x = tf.tensor4d(data.xs, [c.n, c.hw, c.hw, c.ci]);
  const w = tf.tensor4d(data.ws, [c.k, c.k, c.ci, c.co]);
  const dy = tf.tensor(data.dys, outShape);
  const { filterShape, ...attrs } = attrsOf(c);
  const run = () => [
    tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape } as unknown as tf.NamedAttrMap) as tf.Tensor,
    tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
  ];
  let programs: string[] = [];
  let outs: tf.Tensor[];
  if (backend === 'webgpu') {
    const counted = await countDispatches(run);
    outs = counted.result;
    programs = [...counted.count.byProgram.keys()];
  } else {
    outs = run();
  }
  const dW = (await outs[0].data()) as Float32Array;
  const dx = (await outs[1].data()) as Float32Array;
  tf.dispose([x, w, dy, ...outs]);
  return { dW, dx, programs };
}

for (const c of [...RESNET18, ...RESNET50, ...ODD]) {
  test(`Conv2DBackpropFilter (split-K GEMM) and Conv2DBackpropInput (polyphase) on webgpu match cpu: ${c.name}`, async (t) => {
    if (skip) return t.skip(skip);
    const outShape = tf.backend_util.computeConv2DInfo([c.n, c.hw, c.hw, c.ci], [c.k, c.k, c.ci, c.co], c.stride, 1, c.pad).outShape;
    const data = { xs: randn(c.n * c.hw * c.hw * c.ci), ws: randn(c.k * c.k * c.ci * c.co), dys: randn(outShape.reduce((a, b) => a * b, 1)) };
    const before = tf.memory().numTensors;
    const got = await grads('webgpu', c, data, outShape);
    const want = await grads('cpu', c, data, outShape);
    await tf.setBackend('webgpu');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    const dxProgram = c.ci <= DIRECT_MAX_IN_CHANNELS && c.co % 4 === 0 ? 'InputDirectProgram' : 'InputGemmProgram';
    assert.ok(got.programs.includes('FilterGemmProgram') && got.programs.includes(dxProgram), `ran ${got.programs.join(', ')}`);
    const eW = relError(got.dW, want.dW);
    const eX = relError(got.dx, want.dx);
    assert.ok(eW < TOL, `dW: rel err ${eW}`);
    assert.ok(eX < TOL, `dx: rel err ${eX}`);
  });
}

test('dx with more pixel tiles than workgroups allowed along y (ImageNet sizes at large batches) continues them in z', async (t) => {
  if (skip) return t.skip(skip);
  // 2 images of 12×12, stride 2: 36 pixels per phase and image → 3 tiles of 32 per phase; at most 2 along y.
  const c: ConvCase = { name: 'fold', n: 2, hw: 12, ci: 40, co: 8, k: 3, stride: 2, pad: 1 };
  const outShape = tf.backend_util.computeConv2DInfo([c.n, c.hw, c.hw, c.ci], [c.k, c.k, c.ci, c.co], c.stride, 1, c.pad).outShape;
  const data = { xs: randn(c.n * c.hw * c.hw * c.ci), ws: randn(c.k * c.k * c.ci * c.co), dys: randn(outShape.reduce((a, b) => a * b, 1)) };
  tuning.maxWorkgroupsY = 2;
  let got;
  try {
    got = await grads('webgpu', c, data, outShape);
  } finally {
    tuning.maxWorkgroupsY = null;
  }
  const want = await grads('cpu', c, data, outShape);
  await tf.setBackend('webgpu');
  assert.ok(relError(got.dx, want.dx) < TOL, `dx: rel err ${relError(got.dx, want.dx)}`);
});

test('split-K: any number of chunks (the last one short) gives the one-chunk result, and the same bits every run', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const c: ConvCase = { name: 'split', n: 2, hw: 9, ci: 3, co: 40, k: 3, stride: 1, pad: 1 };
  const x = tf.tensor4d(randn(2 * 9 * 9 * 3), [2, 9, 9, 3]);
  const dy = tf.tensor4d(randn(2 * 9 * 9 * 40), [2, 9, 9, 40]);
  const backend = tf.backend() as unknown as WebgpuBackendLike;
  const read = async (split: { splits: number; chunk: number }) => {
    const { result, count } = await countDispatches(() => conv2DBackpropFilterGemm(backend, x, dy, attrsOf(c), split));
    const tensor = tf.engine().makeTensorFromTensorInfo(result);
    const values = (await tensor.data()) as Float32Array;
    tensor.dispose();
    return { values, dispatches: count.total };
  };
  const K = 2 * 9 * 9; // 162: chunks of 64 leave 34 for the last
  const one = await read({ splits: 1, chunk: 192 });
  const three = await read({ splits: 3, chunk: 64 });
  const threeAgain = await read({ splits: 3, chunk: 64 });
  const six = await read({ splits: 6, chunk: 32 });
  assert.equal(one.dispatches, 1, 'one chunk: the GEMM writes dW itself');
  assert.equal(three.dispatches, 2, 'several chunks: the GEMM and one summing pass');
  assert.ok(relError(three.values, one.values) < TOL, `3 chunks vs 1: ${relError(three.values, one.values)}`);
  assert.ok(relError(six.values, one.values) < TOL, `6 chunks vs 1: ${relError(six.values, one.values)}`);
  assert.deepEqual(Buffer.from(threeAgain.values.buffer), Buffer.from(three.values.buffer), 'not bitwise deterministic');
  assert.ok(K > 2 * 64 && K < 3 * 64);
  tf.dispose([x, dy]);
});

test('chooseSplitK: few output tiles and a long K get several chunks of ≥ 256, never an empty one', () => {
  // The CIFAR stem at batch 8: dW is 27×64 (2 tiles), K = 8·32·32.
  const stem = chooseSplitK(27, 64, 8192, 512);
  assert.ok(stem.splits > 1 && stem.chunk >= 256 && stem.chunk % 32 === 0, JSON.stringify(stem));
  assert.ok((stem.splits - 1) * stem.chunk < 8192 && stem.splits * stem.chunk >= 8192, 'chunks cover K exactly once');
  // Many tiles already: no split.
  assert.equal(chooseSplitK(4608, 512, 128, 512).splits, 1);
  // A short K is never split below the minimum chunk.
  assert.equal(chooseSplitK(27, 64, 300, 512).splits, 1);
  // A software adapter (8 workgroups) splits less than a GPU (512).
  assert.ok(chooseSplitK(576, 64, 8192, 8).splits < chooseSplitK(576, 64, 8192, 512).splits);
});
