import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { batchNormTrain, BATCH_NORM_RUNNING_STATS_KERNEL, batchNormRunningStats, FUSED_BATCH_NORM_GRAD_KERNEL, FUSED_BATCH_NORM_KERNEL, hasFusedBatchNorm } from '../../lib/backend/batchnorm-op';
import { bnTuning, rowBlocks } from '../../lib/backend/webgpu/batchnorm';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { tuning } from '../../lib/backend/webgpu/program';
import { Rng } from '../../lib/util/rng';
import { relError, useWebgpu } from '../helpers';
import { compareLayerWithCpu, compareWithCpu } from './bn-running-stats';
import { compareGroupedLayerWithCpu, compareGroupedStats, compareGroupedWithCpu, compareResidualFallback, GROUPED_SHAPES, GROUPS } from './bn-grouped';

/**
 * The fused training BatchNorm (+ ReLU) of lib/backend/webgpu against the composite tfjs ops on
 * the cpu backend: output, batch statistics and the gradients for x, scale and offset, relative
 * error < 1e-5, on ResNet-18's channel counts, odd shapes, activations whose mean is far from 0,
 * and with the per-channel sums cut into several blocks of rows (the two-stage reduction a GPU
 * takes) — and in three dispatches each way; the running-statistics update against the tfjs-op
 * formula on cpu, in one dispatch; a BatchNorm layer trained on webgpu and on cpu alike. With
 * `groups` (separate statistics per equal part of the batch): the same against the cpu
 * composite run on each group, in the same 3 + 3 dispatches, and the running statistics of G
 * groups in one dispatch, equal to G consecutive calls. With a residual (y = act(BN(x) +
 * residual), a ResNet block's end): y and every gradient (dResidual too) against BN, Add and
 * ReLU on cpu, groups 1 and 4, rank 4 and 2, with and without ReLU, still 3 + 3 dispatches
 * (dResidual a second output of the dx dispatch), where the fallback (kernel, then Add and Relu
 * as tfjs ops) takes more; the fallback itself against the fused kernel.
 */

const TOL = 1e-5;
let skip: string | null = null;
const defaultTarget = tuning.targetWorkgroups;

before(async () => {
  skip = await useWebgpu();
});

after(() => {
  tuning.targetWorkgroups = defaultTarget;
});

const rng = new Rng(33);
function randn(n: number): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, 1);
}

interface Run {
  values: Float32Array[];
  dispatches: { forward: number; backward: number };
}

/** y, mean, variance and the gradients of Σ y·dy for x, scale, offset on `backend`. */
async function bn(backend: string, shape: number[], xs: Float32Array, gs: Float32Array, bs: Float32Array, dys: Float32Array, relu: boolean): Promise<Run> {
  await tf.setBackend(backend);
  const x = tf.tensor(xs, shape);
  const scale = tf.tensor1d(gs);
  const offset = tf.tensor1d(bs);
  const dy = tf.tensor(dys, shape);
  const dispatches = { forward: 0, backward: 0 };
  const forward = () =>
    tf.tidy(() => {
      const r = batchNormTrain(x, scale, offset, 1e-5, relu);
      return [r.y, r.mean, r.variance];
    });
  let out: tf.Tensor[];
  let grads: tf.Tensor[];
  const gradsOf = () =>
    tf.tidy(() => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => tf.sum(tf.mul(batchNormTrain(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-5, relu).y, dy)))([x, scale, offset]));
  if (backend === 'webgpu') {
    const f = await countDispatches(forward);
    out = f.result;
    dispatches.forward = f.count.total;
    const g = await countDispatches(gradsOf);
    grads = g.result;
    // The gradient pass also runs the forward (and tf.sum / tf.mul / the seed of Σ y·dy).
    dispatches.backward = g.count.total;
  } else {
    out = forward();
    grads = gradsOf();
  }
  const values: Float32Array[] = [];
  for (const t of [...out, ...grads]) values.push((await t.data()) as Float32Array);
  tf.dispose([x, scale, offset, dy, ...out, ...grads]);
  return { values, dispatches };
}

const NAMES = ['y', 'mean', 'variance', 'dx', 'dScale', 'dOffset'];

async function agree(shape: number[], relu: boolean, opts: { mean?: number; blocksTarget?: number } = {}): Promise<Run> {
  const c = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  const xs = randn(size).map((v, i) => 2 * v + (opts.mean ?? 0) + (i % c) * 0.25);
  const gs = randn(c);
  const bs = randn(c);
  const dys = randn(size);
  tuning.targetWorkgroups = opts.blocksTarget ?? defaultTarget;
  try {
    await tf.setBackend('webgpu');
    const before = tf.memory().numTensors;
    assert.ok(hasFusedBatchNorm(), `${FUSED_BATCH_NORM_KERNEL} is not registered for webgpu`);
    const got = await bn('webgpu', shape, xs, gs, bs, dys, relu);
    await tf.setBackend('cpu');
    assert.ok(!hasFusedBatchNorm(), 'the cpu reference must be the composite');
    const want = await bn('cpu', shape, xs, gs, bs, dys, relu);
    await tf.setBackend('webgpu');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    NAMES.forEach((name, i) => {
      const e = relError(got.values[i], want.values[i]);
      assert.ok(e < TOL, `${name}: rel err ${e}`);
    });
    return got;
  } finally {
    tuning.targetWorkgroups = defaultTarget;
  }
}

for (const relu of [true, false]) {
  for (const shape of [
    [4, 8, 8, 64],
    [2, 4, 4, 128],
    [2, 2, 2, 512],
    [3, 5, 7, 13],
    [9, 13],
  ]) {
    test(`fused BatchNorm${relu ? ' + ReLU' : ''} [${shape}] on webgpu matches the cpu composite: y, statistics, dx, dScale, dOffset`, async (t) => {
      if (skip) return t.skip(skip);
      await agree(shape, relu);
    });
  }
}

test('fused BatchNorm on webgpu: activations with a mean far from 0 (statistics without cancellation)', async (t) => {
  if (skip) return t.skip(skip);
  await agree([4, 6, 6, 16], true, { mean: 40 });
});

test('fused BatchNorm on webgpu: per-channel sums over many blocks of rows (two-stage) match, in few dispatches', async (t) => {
  if (skip) return t.skip(skip);
  const shape = [8, 16, 16, 32];
  assert.ok(rowBlocks(8 * 16 * 16, 32, 512).blocks > 8, 'the case must reach several blocks');
  const many = await agree(shape, true, { blocksTarget: 512 });
  const one = await agree(shape, true, { blocksTarget: 1 });
  // Forward: sums, mean and variance (one multi-output dispatch), normalise.
  assert.equal(many.dispatches.forward, 3);
  assert.equal(one.dispatches.forward, 3);
  // The gradient pass: the forward again (3), the loss' multiply and sum and their gradients (a few), BN's 3.
  assert.equal(many.dispatches.backward, one.dispatches.backward);
  assert.ok(one.dispatches.backward <= 12, `backward took ${one.dispatches.backward} dispatches`);
});

for (const blocksTarget of [512, 1]) {
  test(`fused BatchNorm on webgpu: 3 dispatches forward and 3 backward, by program (${blocksTarget === 1 ? 'one block' : 'several blocks'})`, async (t) => {
    if (skip) return t.skip(skip);
    await tf.setBackend('webgpu');
    tuning.targetWorkgroups = blocksTarget;
    const shape = [8, 16, 16, 32];
    assert.equal(rowBlocks(8 * 16 * 16, 32).blocks > 1, blocksTarget > 1);
    const before = tf.memory().numTensors;
    try {
      const x = tf.randomNormal(shape);
      const dy = tf.randomNormal(shape);
      const scale = tf.randomNormal([32]);
      const offset = tf.randomNormal([32]);
      for (const relu of [true, false]) {
        const attrs = { varianceEpsilon: 1e-5, relu } as unknown as tf.NamedAttrMap;
        const f = await countDispatches(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset }, attrs) as tf.Tensor[]);
        assert.deepEqual(Object.fromEntries(f.count.byProgram), { ChannelSumsProgram: 1, MixMaskBnMoments: 1, NormalizeProgram: 1 });
        const [y, mean, variance] = f.result;
        const b = await countDispatches(() => tf.engine().runKernel(FUSED_BATCH_NORM_GRAD_KERNEL, { dy, x, y, mean, variance, scale }, attrs) as tf.Tensor[]);
        assert.deepEqual(Object.fromEntries(b.count.byProgram), { ChannelSumsProgram: 1, MixMaskBnGradFinish: 1, MixMaskBnGradInput: 1 });
        tf.dispose([...f.result, ...b.result]);
      }
      tf.dispose([x, dy, scale, offset]);
    } finally {
      tuning.targetWorkgroups = defaultTarget;
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });
}

test(`${BATCH_NORM_RUNNING_STATS_KERNEL} on webgpu matches the tfjs-op formula on cpu (rank 2 and 4, n = 1, consecutive calls), one dispatch per call`, async (t) => {
  if (skip) return t.skip(skip);
  const runs = await compareWithCpu('webgpu', 5);
  for (const run of runs) assert.deepEqual(run.dispatches, run.dispatches.map(() => 1));
});

for (const shape of [
  [4, 3, 3, 8],
  [6, 70],
]) {
  test(`a BatchNorm layer trained 4 steps on webgpu ends with the running statistics and num_batches_tracked of cpu [${shape}]`, async (t) => {
    if (skip) return t.skip(skip);
    await compareLayerWithCpu('webgpu', shape, 4, 21);
  });
}

test(`${BATCH_NORM_RUNNING_STATS_KERNEL} on webgpu: a float32 counter or a fractional count is a clear error`, async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const r = tf.zeros([4]);
  const f32 = tf.scalar(0);
  const i32 = tf.scalar(0, 'int32');
  const r3 = tf.zeros([3]);
  const run = (numBatchesTracked: tf.Tensor, count: number) => () =>
    tf.engine().runKernel(BATCH_NORM_RUNNING_STATS_KERNEL, { runningMean: r, runningVar: r, numBatchesTracked, mean: r, variance: r }, { momentum: 0.1, count });
  assert.throws(run(f32, 4), /numBatchesTracked must be an int32 scalar, got float32/);
  assert.throws(run(i32, 2.5), /count \(elements per channel in the batch\) must be an integer ≥ 1, got 2.5/);
  assert.throws(() => batchNormRunningStats({ runningMean: r, runningVar: r3, numBatchesTracked: i32, mean: r, variance: r }, { momentum: 0.1, count: 4 }), /runningVar has shape \[3\], expected \[4\]/);
  tf.dispose([r, r3, f32, i32]);
});

test('rowBlocks: blocks cover the rows exactly once and never hold fewer than 64 rows (unless there is one)', () => {
  for (const [R, C, target] of [
    [8192, 64, 512],
    [8192, 64, 8],
    [100, 512, 512],
    [63, 3, 512],
    [1_000_003, 16, 512],
  ]) {
    const { blocks, rowsPerBlock } = rowBlocks(R, C, target);
    assert.ok((blocks - 1) * rowsPerBlock < R && blocks * rowsPerBlock >= R, `[${R}, ${C}]: ${blocks} × ${rowsPerBlock}`);
    assert.ok(blocks === 1 || rowsPerBlock >= 64, `[${R}, ${C}]: ${rowsPerBlock} rows per block`);
  }
  assert.equal(rowBlocks(8192, 64, 1).blocks, 1);
});

test('fused BatchNorm on webgpu rejects a scale whose length is not the channel count', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const x = tf.zeros([2, 3, 3, 4]);
  const scale = tf.ones([5]) as tf.Tensor1D;
  const offset = tf.zeros([4]) as tf.Tensor1D;
  assert.throws(() => batchNormTrain(x, scale, offset, 1e-5, false), /scale has 5 channels, x has 4/);
  tf.dispose([x, scale, offset]);
});

GROUPED_SHAPES.forEach((shape, k) => {
  for (const groups of GROUPS) {
    const relu = (k + groups) % 2 === 0;
    test(`grouped BatchNorm${relu ? ' + ReLU' : ''} [${shape}], groups ${groups}, on webgpu matches the cpu composite on each group: y, statistics [groups, C], dx, dScale, dOffset`, async (t) => {
      if (skip) return t.skip(skip);
      await compareGroupedWithCpu('webgpu', shape, groups, relu, 40 + 3 * k + groups);
    });
  }
});

for (const blocksTarget of [512, 1]) {
  test(`grouped BatchNorm on webgpu: groups over ${blocksTarget === 1 ? 'one block' : 'several blocks'} of rows each match, in 3 dispatches forward and 3 backward, by program`, async (t) => {
    if (skip) return t.skip(skip);
    const shape = [8, 8, 8, 8];
    tuning.targetWorkgroups = blocksTarget;
    try {
      // 4 groups of 2·8·8 = 128 rows: 2 blocks of 64 rows per group at the default target.
      assert.equal(rowBlocks(128, 8, Math.ceil(blocksTarget / 4)).blocks, blocksTarget === 1 ? 1 : 2);
      for (const relu of [true, false]) await compareGroupedWithCpu('webgpu', shape, 4, relu, 60);
      await tf.setBackend('webgpu');
      const before = tf.memory().numTensors;
      const x = tf.randomNormal(shape);
      const dy = tf.randomNormal(shape);
      const scale = tf.randomNormal([8]);
      const offset = tf.randomNormal([8]);
      for (const groups of [1, 2, 4]) {
        const attrs = { varianceEpsilon: 1e-5, relu: true, groups } as unknown as tf.NamedAttrMap;
        const f = await countDispatches(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset }, attrs) as tf.Tensor[]);
        assert.deepEqual(Object.fromEntries(f.count.byProgram), { ChannelSumsProgram: 1, MixMaskBnMoments: 1, NormalizeProgram: 1 }, `groups ${groups}: forward`);
        const [y, mean, variance] = f.result;
        assert.deepEqual(mean.shape, groups === 1 ? [8] : [groups, 8]);
        const b = await countDispatches(() => tf.engine().runKernel(FUSED_BATCH_NORM_GRAD_KERNEL, { dy, x, y, mean, variance, scale }, attrs) as tf.Tensor[]);
        assert.deepEqual(Object.fromEntries(b.count.byProgram), { ChannelSumsProgram: 1, MixMaskBnGradFinish: 1, MixMaskBnGradInput: 1 }, `groups ${groups}: gradient`);
        assert.deepEqual(b.result.map((r) => r.shape), [shape, [8], [8]]);
        tf.dispose([...f.result, ...b.result]);
      }
      tf.dispose([x, dy, scale, offset]);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    } finally {
      tuning.targetWorkgroups = defaultTarget;
    }
  });
}

test('grouped BatchNorm on webgpu: groups that do not divide the batch, or statistics of the wrong shape, are clear errors', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const x = tf.zeros([6, 2, 2, 3]);
  const scale = tf.ones([3]) as tf.Tensor1D;
  const offset = tf.zeros([3]) as tf.Tensor1D;
  assert.throws(() => batchNormTrain(x, scale, offset, 1e-5, false, { groups: 4 }), /groups = 4 must divide the batch \(first axis of x, \[6,2,2,3\]\) into equal parts/);
  assert.throws(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset }, { varianceEpsilon: 1e-5, relu: false, groups: 1.5 }), /groups must be a positive integer, got 1.5/);
  const stats = tf.zeros([3]);
  assert.throws(
    () => tf.engine().runKernel(FUSED_BATCH_NORM_GRAD_KERNEL, { dy: x, x, y: x, mean: stats, variance: stats, scale }, { varianceEpsilon: 1e-5, relu: false, groups: 2 }),
    /mean has shape \[3\], expected \[2,3\] \(groups = 2, 3 channels\)/,
  );
  tf.dispose([x, scale, offset, stats]);
});

test(`${BATCH_NORM_RUNNING_STATS_KERNEL} on webgpu with [G, C] statistics: one dispatch, equal to G consecutive calls, num_batches_tracked + G`, async (t) => {
  if (skip) return t.skip(skip);
  const runs = await compareGroupedStats('webgpu', 70);
  assert.deepEqual(runs.map((r) => r.dispatches), runs.map(() => 1));
});

for (const [shape, groups] of [
  [[8, 3, 3, 6], 4],
  [[12, 70], 2],
] as const) {
  test(`a BatchNorm layer with groups ${groups} on webgpu [${shape}]: output and running statistics of ${groups} calls on the parts on cpu`, async (t) => {
    if (skip) return t.skip(skip);
    await compareGroupedLayerWithCpu('webgpu', [...shape], groups, 80);
  });
}

GROUPED_SHAPES.forEach((shape, k) => {
  for (const groups of [1, 4]) {
    test(`BatchNorm + residual [${shape}], groups ${groups}, with and without ReLU, on webgpu matches BN, Add, ReLU on cpu: y, statistics, dx, dScale, dOffset, dResidual`, async (t) => {
      if (skip) return t.skip(skip);
      for (const relu of [true, false]) await compareGroupedWithCpu('webgpu', shape, groups, relu, 110 + 3 * k + groups, true);
    });
  }
});

test('BatchNorm + residual + ReLU on webgpu at a ResNet-18 shape [4, 8, 8, 64] and over several blocks of rows', async (t) => {
  if (skip) return t.skip(skip);
  await compareGroupedWithCpu('webgpu', [4, 8, 8, 64], 1, true, 120, true);
  tuning.targetWorkgroups = 512;
  try {
    assert.ok(rowBlocks(8 * 8 * 8 / 4, 8, 128).blocks > 1);
    await compareGroupedWithCpu('webgpu', [8, 8, 8, 8], 4, true, 121, true);
  } finally {
    tuning.targetWorkgroups = defaultTarget;
  }
});

test('BatchNorm + residual on webgpu: the dx pass over a 2-D grid of workgroups (past a lowered per-dimension cap) matches', async (t) => {
  if (skip) return t.skip(skip);
  // [8, 4, 4, 13]: 1,664 elements, 26 workgroups of 64 -> an 8 × 4 grid (6 workgroups idle) at a cap of 8.
  bnTuning.maxWorkgroupsPerDimension = 8;
  try {
    for (const relu of [true, false]) await compareGroupedWithCpu('webgpu', [8, 4, 4, 13], 4, relu, 122, true);
    for (const relu of [true, false]) await compareGroupedWithCpu('webgpu', [8, 4, 4, 13], 1, relu, 123, false);
  } finally {
    bnTuning.maxWorkgroupsPerDimension = null;
  }
});

test('BatchNorm + residual on webgpu: 3 dispatches forward and 3 backward by program (dResidual from the dx dispatch); the fallback takes more', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const shape = [8, 4, 4, 16];
  const before = tf.memory().numTensors;
  const x = tf.randomNormal(shape);
  const dy = tf.randomNormal(shape);
  const residual = tf.randomNormal(shape);
  const scale = tf.randomNormal([16]) as tf.Tensor1D;
  const offset = tf.randomNormal([16]) as tf.Tensor1D;
  for (const relu of [true, false]) {
    for (const groups of [1, 4]) {
      const attrs = { varianceEpsilon: 1e-5, relu, groups, residual: true } as unknown as tf.NamedAttrMap;
      const f = await countDispatches(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset, residual }, attrs) as tf.Tensor[]);
      assert.deepEqual(Object.fromEntries(f.count.byProgram), { ChannelSumsProgram: 1, MixMaskBnMoments: 1, NormalizeProgram: 1 }, `relu ${relu}, groups ${groups}: forward`);
      const [y, mean, variance] = f.result;
      const b = await countDispatches(() => tf.engine().runKernel(FUSED_BATCH_NORM_GRAD_KERNEL, { dy, x, y, mean, variance, scale }, attrs) as tf.Tensor[]);
      assert.deepEqual(Object.fromEntries(b.count.byProgram), { ChannelSumsProgram: 1, MixMaskBnGradFinish: 1, MixMaskBnGradInput: 1 }, `relu ${relu}, groups ${groups}: gradient`);
      assert.deepEqual(b.result.map((r) => r.shape), [shape, [16], [16], shape], 'dx, dScale, dOffset, dResidual');
      // dResidual is g = dy·[y > 0] (or dy) exactly.
      const [dyv, yv, dr] = [await dy.data(), await y.data(), await b.result[3].data()];
      assert.deepEqual(Array.from(dr), Array.from(dyv, (d, i) => (relu ? (yv[i] > 0 ? d : 0) : d)));
      tf.dispose([...f.result, ...b.result]);
    }
  }
  // Through batchNormTrain and tf.grads: the fused residual against the fallback's kernel + Add + Relu.
  const grads = () => tf.tidy(() => tf.grads((a: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(batchNormTrain(a, scale, offset, 1e-5, true, { residual: r }).y, dy)))([x, residual]));
  const fused = await countDispatches(() => tf.tidy(() => batchNormTrain(x, scale, offset, 1e-5, true, { residual }).y));
  const fusedGrads = await countDispatches(grads);
  assert.equal(fused.count.total, 3);
  const declared = tf.getKernel(FUSED_BATCH_NORM_KERNEL, 'webgpu')!;
  tf.unregisterKernel(FUSED_BATCH_NORM_KERNEL, 'webgpu');
  tf.registerKernel({ ...declared, kernelFunc: ((args: never) => declared.kernelFunc(args)) as unknown as tf.KernelFunc });
  let fallback: Awaited<ReturnType<typeof countDispatches<tf.Tensor>>>;
  let fallbackGrads: Awaited<ReturnType<typeof countDispatches<tf.Tensor[]>>>;
  try {
    fallback = await countDispatches(() => tf.tidy(() => batchNormTrain(x, scale, offset, 1e-5, true, { residual }).y));
    fallbackGrads = await countDispatches(grads);
  } finally {
    tf.unregisterKernel(FUSED_BATCH_NORM_KERNEL, 'webgpu');
    tf.registerKernel(declared);
  }
  assert.equal(fallback.count.total, 5, 'the fallback: the kernel without ReLU, then Add and Relu');
  assert.ok(fusedGrads.count.total < fallbackGrads.count.total, `gradient: fused ${fusedGrads.count.total} dispatches, fallback ${fallbackGrads.count.total}`);
  console.log(`# BatchNorm + residual + ReLU [${shape}] on webgpu: forward ${fused.count.total} dispatches (fallback ${fallback.count.total}); forward + gradient ${fusedGrads.count.total} (fallback ${fallbackGrads.count.total})`);
  tf.dispose([fused.result, fallback.result, ...fusedGrads.result, ...fallbackGrads.result, x, dy, residual, scale, offset]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});

test('BatchNorm + residual on webgpu: a backend kernel that has not declared the residual takes the fallback, with the same result', async (t) => {
  if (skip) return t.skip(skip);
  const calls = await compareResidualFallback('webgpu', [[8, 3, 3, 5], [12, 9]], 130);
  assert.ok(calls.length > 0 && calls.every((c) => !c.residual && !c.relu), 'the fallback calls the kernel without residual and without ReLU');
});

test('BatchNorm + residual on webgpu: a residual of another shape, or attrs and inputs that disagree, are clear errors', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const x = tf.zeros([4, 2, 2, 3]);
  const wrong = tf.zeros([4, 2, 2, 4]);
  const scale = tf.ones([3]) as tf.Tensor1D;
  const offset = tf.zeros([3]) as tf.Tensor1D;
  assert.throws(() => batchNormTrain(x, scale, offset, 1e-5, true, { residual: wrong }), /batchNormTrain: residual has shape \[4,2,2,4\], expected x's \[4,2,2,3\]/);
  assert.throws(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset }, { varianceEpsilon: 1e-5, relu: false, residual: true }), /attrs.residual is true but the residual input is missing/);
  assert.throws(() => tf.engine().runKernel(FUSED_BATCH_NORM_KERNEL, { x, scale, offset, residual: x }, { varianceEpsilon: 1e-5, relu: false }), /attrs.residual is false but the residual input is given/);
  tf.dispose([x, wrong, scale, offset]);
});
