import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../lib/backend';
import { loadAll, makeRecipe, syntheticDataset, twoViews } from '../../lib/data';
import { knnMonitor } from '../../lib/eval';
import { FRAMEWORKS, makeFramework } from '../../lib/frameworks';
import { disposeViews, makeViews } from '../../lib/masks';
import { MlpHead, resnet18 } from '../../lib/models';
import { pretrainConfig } from '../../lib/presets';
import { type EpochRecord, JsonlLog } from '../../lib/train/log';
import { makeOptimizer } from '../../lib/optim';
import { silentProgress } from '../../lib/train/progress';
import { CHECKPOINT_FILE, Trainer } from '../../lib/train/trainer';
import { Rng } from '../../lib/util/rng';
import { relError, tensorCounts, useWebgpu } from '../helpers';
import { compareSteps, lossAndGrads } from './train-step';

/**
 * What training needs, on the webgpu backend against cpu (and wasm): a ResNet-18 step, a full
 * step of every framework with MixMask (augmented views, masks, loss, optimiser, momentum
 * targets), the kNN monitor, and no tensor growth across steps. Tiny widths: a software adapter
 * runs every shader on the CPU.
 */

let skip: string | null = null;

before(async () => {
  skip = await useWebgpu();
});

test('ResNet-18 (CIFAR stem, width 8) + head + NT-Xent: one step on webgpu matches cpu and wasm', async (t) => {
  if (skip) return t.skip(skip);
  const shape: [number, number, number, number] = [8, 16, 16, 3];
  const x = new Rng(3).fillNormal(new Float32Array(8 * 16 * 16 * 3), 0, 1);
  const build = () => {
    const backbone = resnet18({ width: 8, seed: 5 });
    return { backbone, head: new MlpHead(backbone.featureDim, [32], 16, { seed: 6 }) };
  };
  const got = await lossAndGrads('webgpu', build, x, shape);
  const cpu = await lossAndGrads('cpu', build, x, shape);
  await initBackend({ force: 'wasm', env: {} });
  const wasm = await lossAndGrads('wasm', build, x, shape);
  await tf.setBackend('webgpu');
  // Train-mode BatchNorm over few values per channel amplifies float32 rounding (the wasm
  // test's reasoning); the kernels themselves agree to 1e-5 (webgpu-kernels.test).
  compareSteps(got, cpu, 1e-4);
  compareSteps(got, wasm, 1e-4);
});

/** One full training step, as lib/train's Trainer takes it: views, loss terms, gradients and the state after it. */
async function frameworkStep(backend: string, name: (typeof FRAMEWORKS)[number], images: Float32Array) {
  await tf.setBackend(backend);
  const cfg = pretrainConfig(name, 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4, width: 4 });
  const fw = makeFramework(name, cfg.backbone, { ...cfg.heads, queueSize: 16 }, 1);
  const opt = makeOptimizer(cfg.optimizer, fw.namedTrainable());
  const recipe = makeRecipe(cfg.recipe, { size: 32 });
  const rng = new Rng(7);
  const batch = tf.tensor4d(images, [8, 32, 32, 3]);
  const { view1, view2 } = twoViews(batch, recipe, rng);
  batch.dispose();
  const views = makeViews(view1, cfg.view, rng);
  const read = async (t: tf.Tensor) => Float32Array.from(await t.data());
  const seen = { view1: await read(view1), mixed: await read(views[0].mixed) };
  const { result, grads, targets } = await fw.computeGradients(view1, view2, views, rng);
  const gradients: Float32Array[] = [];
  for (const [, v] of fw.namedTrainable()) gradients.push(await read(grads[v.name]));
  opt.step(grads, cfg.optimizer.lr);
  fw.afterStep(targets, 0, 10);
  tf.dispose([...Object.values(grads), ...targets, view1, view2]);
  disposeViews(views);
  const state: Float32Array[] = [];
  for (const [, v] of fw.namedState()) state.push(await read(v));
  opt.dispose();
  fw.dispose();
  return { result, seen, gradients, state, lambda: views.map((v) => v.lambda) };
}

/** ‖a − b‖ / ‖b‖ over all arrays together: insensitive to tensors whose true value is ~0. */
function normwise(a: Float32Array[], b: Float32Array[]): number {
  let num = 0;
  let den = 0;
  b.forEach((w, j) => {
    for (let i = 0; i < w.length; i++) {
      num += (a[j][i] - w[i]) ** 2;
      den += w[i] ** 2;
    }
  });
  return Math.sqrt(num / den);
}

for (const name of FRAMEWORKS) {
  test(`${name} + MixMask: a full training step (views, masks, loss, optimiser, targets) on webgpu matches cpu`, async (t) => {
    if (skip) return t.skip(skip);
    const images = new Rng(11).fillUniform(new Float32Array(8 * 32 * 32 * 3), 0, 1);
    let before = tf.memory().numTensors;
    const got = await frameworkStep('webgpu', name, images);
    const leftWebgpu = tf.memory().numTensors - before;
    before = tf.memory().numTensors;
    const want = await frameworkStep('cpu', name, images);
    const leftCpu = tf.memory().numTensors - before;
    await tf.setBackend('webgpu');
    // Not 0 for simsiam: BatchNorm without affine (its projector's output) keeps two constants
    // after dispose() on every backend (lib/models/layers.ts); webgpu must add nothing to that.
    assert.equal(leftWebgpu, leftCpu, `tensors left after building, stepping and disposing: webgpu ${leftWebgpu}, cpu ${leftCpu}`);
    // Augmented and mixed views: the kernels' precision.
    assert.ok(relError(got.seen.view1, want.seen.view1) < 1e-5, `augmented view: rel err ${relError(got.seen.view1, want.seen.view1)}`);
    assert.ok(relError(got.seen.mixed, want.seen.mixed) < 1e-5, `MixMask view: rel err ${relError(got.seen.mixed, want.seen.mixed)}`);
    assert.deepEqual(got.lambda, want.lambda, 'the same masks');
    // The loss and its terms: measured within 2e-6 of cpu.
    const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
    assert.ok(close(got.result.loss, want.result.loss), `loss ${got.result.loss} vs ${want.result.loss}`);
    assert.deepEqual(Object.keys(got.result.terms), Object.keys(want.result.terms));
    for (const [k, v] of Object.entries(want.result.terms)) assert.ok(close(got.result.terms[k], v), `term ${k}: ${got.result.terms[k]} vs ${v}`);
    assert.ok(close(got.result.embeddingStd, want.result.embeddingStd), 'embeddingStd');
    // Gradients through 20+ train-mode BatchNorms of width 4 amplify float32 rounding: measured
    // 5e-4 to 5e-3 for webgpu vs cpu, and the same for wasm vs cpu; a wrong kernel gives ~1.
    const gradErr = normwise(got.gradients, want.gradients);
    assert.ok(gradErr < 2e-2, `gradients: ‖Δ‖/‖g‖ = ${gradErr}`);
    // The state after the step (weights, running statistics, momentum targets, MoCo's queue).
    // Adam's first update is ≈ lr·sign(g), so weights whose true gradient is ~0 move by ±lr on
    // either backend at random: measured 4e-4 (byol) and 1.5e-3 (simclr), < 1e-6 with SGD.
    assert.equal(got.state.length, want.state.length);
    assert.ok(got.state.every((w) => w.every(Number.isFinite)), 'non-finite state on webgpu');
    const stateErr = normwise(got.state, want.state);
    assert.ok(stateErr < 1e-2, `state after the step: ‖Δ‖/‖w‖ = ${stateErr}`);
  });
}

test('training steps on webgpu keep tf.memory().numTensors flat (moco-v2 + MixMask)', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const cfg = pretrainConfig('moco-v2', 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4, width: 4 });
  const fw = makeFramework('moco-v2', cfg.backbone, { ...cfg.heads, queueSize: 16 }, 1);
  const opt = makeOptimizer(cfg.optimizer, fw.namedTrainable());
  const recipe = makeRecipe(cfg.recipe, { size: 32 });
  const ds = syntheticDataset({ size: 8, numClasses: 2, seed: 1 });
  const { images, labels } = await loadAll(ds);
  labels.dispose();
  const losses: number[] = [];
  const counts = await tensorCounts(3, async (step) => {
    const rng = new Rng(step);
    const { view1, view2 } = twoViews(images, recipe, rng);
    const views = makeViews(view1, cfg.view, rng);
    const { result, grads, targets } = await fw.computeGradients(view1, view2, views, rng);
    opt.step(grads, cfg.optimizer.lr);
    fw.afterStep(targets, step, 3);
    tf.dispose([...Object.values(grads), ...targets, view1, view2]);
    disposeViews(views);
    losses.push(result.loss);
  });
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  // The first step creates the optimiser's slots; from then on nothing may grow.
  assert.deepEqual(counts.slice(1), [counts[1], counts[1]], `tensor counts ${counts}`);
  images.dispose();
  opt.dispose();
  fw.dispose();
});

test('the kNN monitor on webgpu gives the cpu result', async (t) => {
  if (skip) return t.skip(skip);
  const bank = syntheticDataset({ size: 48, numClasses: 4, seed: 2 });
  const query = syntheticDataset({ size: 16, numClasses: 4, seed: 3 });
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    const backbone = resnet18({ width: 4, seed: 9 });
    try {
      return await knnMonitor(backbone, { bank, query, k: 10, t: 0.1, batchSize: 16, queryChunk: 5, bankChunk: 20 });
    } finally {
      backbone.dispose();
    }
  };
  const got = await run('webgpu');
  const want = await run('cpu');
  await tf.setBackend('webgpu');
  assert.deepEqual(Array.from(got.predictions), Array.from(want.predictions));
  assert.equal(got.top1, want.top1);
  assert.equal(got.top5, want.top5);
});

test('the Trainer runs on webgpu: steps with MixMask, the kNN monitor each epoch, a checkpoint, and a resume', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-webgpu-run-'));
  const train = syntheticDataset({ size: 16, numClasses: 4, seed: 1 });
  const config = pretrainConfig('byol', 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4, epochs: 2, batchSize: 8 });
  const monitor = async (backbone: Parameters<typeof knnMonitor>[0]) => knnMonitor(backbone, { bank: train, query: train, k: 5, batchSize: 8 });
  const run = async (resume: boolean, maxSteps?: number) => {
    const trainer = new Trainer({ config, runDir: dir, train, progress: silentProgress, monitor, resume, maxSteps });
    try {
      return await trainer.run();
    } finally {
      trainer.dispose();
    }
  };
  const before = tf.memory().numTensors;
  assert.equal((await run(false, 3)).status, 'stopped');
  assert.ok(fs.existsSync(path.join(dir, CHECKPOINT_FILE)));
  const done = await run(true);
  assert.equal(done.status, 'completed');
  assert.equal(tf.memory().numTensors, before, 'tensors left after two runs');
  const records = JsonlLog.read(path.join(dir, 'log.jsonl'));
  const steps = records.filter((r) => r.type === 'step');
  assert.equal(steps.length, 4);
  assert.ok(steps.every((r) => Number.isFinite(r.loss as number)), 'finite losses');
  const epochs = records.filter((r): r is EpochRecord => r.type === 'epoch');
  assert.equal(epochs.length, 2);
  assert.ok(epochs.every((r) => typeof r.knnTop1 === 'number'), 'the kNN monitor ran every epoch');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a synchronous read of GPU data on webgpu is a clear error, and an asynchronous one works', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const y = tf.matMul(tf.ones([16, 16]), tf.ones([16, 16]));
  assert.throws(() => y.dataSync(), /webgpu: a synchronous read .* use `await tensor\.data\(\)`/);
  assert.equal((await y.data())[0], 16);
  // Once read, the values stay on the CPU side too.
  assert.equal(y.dataSync()[5], 16);
  y.dispose();
});
