/**
 * End to end through `npm run train -- --engine torch`: a 2-process CPU run (torchrun, gloo) on
 * Fashion-MNIST whose log.jsonl and checkpoint are ours — notebook 03's reader and plots take the
 * log, `npm run eval` the checkpoint, and our trainer's state (framework and optimiser) loads from
 * it tensor for tensor. A run stopped, then killed by a failing rank, then resumed ends exactly
 * where an uninterrupted one does, and the failure leaves the last checkpoint intact.
 */
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadSplits } from '../../lib/data/named';
import { knnMonitor } from '../../lib/eval';
import { runDatasets } from '../../lib/experiments';
import { makeFramework } from '../../lib/frameworks';
import { makeOptimizer } from '../../lib/optim';
import { readRunLog, runSummary, trainingCurvesFigure } from '../../lib/plot/runs';
import { assignFromCheckpoint, loadBackbone, loadCheckpoint } from '../../lib/train/checkpoint';
import { readRunConfig } from '../../lib/train/config';
import type { StepRecord } from '../../lib/train/log';
import { FASHION_MNIST_DEBIAN_DIR } from '../../lib/data/paths';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { ROOT, pyEnv, skip as noTorch } from './common';

const hasData = fs.existsSync(path.join(FASHION_MNIST_DEBIAN_DIR, 'train-images-idx3-ubyte.gz'));
const skip = noTorch || (!hasData && !process.env.CI ? `needs Debian's dataset-fashion-mnist in ${FASHION_MNIST_DEBIAN_DIR}` : false);

before(async () => {
  await useBackend('wasm');
});

function train(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'train.js'), ...args], {
    encoding: 'utf8', env: pyEnv(env), timeout: 300_000,
  });
}

const RUN = ['--engine', 'torch', '--nproc-per-node', '2', '--framework', 'moco-v2', '--method', 'mixmask', '--dataset', 'fashion-mnist', '--profile', 'smoke'];

function steps(dir: string): StepRecord[] {
  return readRunLog(dir).steps;
}

test('torch engine end to end: 2 processes on Fashion-MNIST, stop, rank failure, resume; our log, checkpoint and evaluator', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-torch-e2e-'));
  const a = path.join(dir, 'uninterrupted');
  const b = path.join(dir, 'interrupted');
  try {
    const t0 = Date.now();
    let r = train([...RUN, '--run-dir', a]);
    assert.equal(r.status, 0, `uninterrupted run failed:\n${r.stderr}`);
    t.diagnostic(`2-process smoke run (8 steps of 16 images): ${((Date.now() - t0) / 1000).toFixed(1)} s with startup`);
    const cfg = readRunConfig(path.join(a, 'config.json'));
    assert.equal(cfg.framework, 'moco-v2');

    // Notebook 03's reader and figures take the log as it is.
    const log = readRunLog(a);
    assert.equal(log.steps.length, 8);
    assert.equal(log.epochs.length, 2);
    assert.deepEqual(log.steps.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    for (const s of log.steps) {
      assert.ok(Number.isFinite(s.loss) && s.lambda! > 0 && s.lambda! < 1 && s.lr! > 0 && s.embeddingStd! > 0, JSON.stringify(s));
      assert.deepEqual(Object.keys(s.terms!).sort(), ['base', 'mix0.own', 'mix0.partner']);
      assert.ok(Math.abs(s.loss - (s.terms!.base + s.terms!['mix0.own'] + s.terms!['mix0.partner'])) < 1e-4 * Math.abs(s.loss));
    }
    assert.equal(runSummary(log).steps, 8);
    assert.ok(trainingCurvesFigure([{ group: 'torch', method: 'mixmask', log }]).data.length > 0);

    // Our trainer's whole state loads from the engine's checkpoint, tensor for tensor.
    const ckpt = loadCheckpoint(path.join(a, 'checkpoint.safetensors'));
    assert.equal(ckpt.meta.step, 8);
    assert.equal(ckpt.meta.epoch, 2);
    const fw = makeFramework(cfg.framework, cfg.backbone, cfg.heads, cfg.seed);
    const opt = makeOptimizer(cfg.optimizer, fw.namedTrainable());
    try {
      assignFromCheckpoint(fw.namedState() as Array<[string, tf.Variable]>, ckpt, '', 'torch checkpoint');
      assignFromCheckpoint(opt.namedState().map(([n, v]) => [n, v as tf.Variable]), ckpt, 'optim.', 'torch checkpoint');
      const ours = fw.namedState().length + opt.namedState().length;
      assert.equal(ckpt.tensors.size, ours, 'the engine writes exactly the tensors our trainer has');
    } finally {
      fw.dispose();
      opt.dispose();
    }

    // The engine's kNN monitor is ours: same bank and queries (validation split, seeded subsets),
    // same vote, on the final weights.
    const lastEpoch = log.epochs[log.epochs.length - 1];
    assert.ok(lastEpoch.knnTop1 !== undefined, 'the last epoch record has the kNN monitor');
    const sets = runDatasets(cfg, await loadSplits(cfg.dataset));
    const backbone = loadBackbone(path.join(a, 'checkpoint.safetensors'));
    try {
      const knn = await knnMonitor(backbone, { bank: sets.bank, query: sets.query, k: cfg.knn.k, t: cfg.knn.t, transform: { size: cfg.imageSize, normalize: null } });
      t.diagnostic(`kNN monitor: engine ${lastEpoch.knnTop1}%, ours on its checkpoint ${knn.top1}% (${sets.query.size} queries)`);
      assert.ok(Math.abs(knn.top1 - lastEpoch.knnTop1!) <= 100 / sets.query.size + 1e-9, `kNN top-1 ${lastEpoch.knnTop1} vs ours ${knn.top1}`);
    } finally {
      backbone.dispose();
    }

    // npm run eval reads it.
    const ev = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'evaluate.js'), '--checkpoint', path.join(a, 'checkpoint.safetensors'),
      '--dataset', 'fashion-mnist', '--protocol', 'knn', '--limit-train', '500', '--limit-test', '200', '--out', path.join(dir, 'eval.json'), '--quiet'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(ev.status, 0, ev.stderr);
    const result = JSON.parse(fs.readFileSync(path.join(dir, 'eval.json'), 'utf8')) as { top1: number; checkpointMeta: { framework: string; step: number } };
    assert.equal(result.checkpointMeta.framework, 'moco-v2');
    assert.ok(result.top1 > 10, `kNN top-1 ${result.top1}% is not above chance`);

    // Stop after 3 steps, fail on rank 1 at step 6 (after the epoch-end checkpoint at 4), resume.
    r = train([...RUN, '--run-dir', b, '--max-steps', '3']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(loadCheckpoint(path.join(b, 'checkpoint.safetensors')).meta.step, 3);
    r = train(['--engine', 'torch', '--nproc-per-node', '2', '--resume', '--run-dir', b], { MIXMASK_TORCH_FAIL_AT: '1:5' });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /rank 1 failed: RuntimeError: injected failure/);
    assert.match(r.stderr, /the PyTorch engine failed \(torchrun exit code 1.*the last checkpoint, .*checkpoint\.safetensors, is intact/s);
    assert.equal(loadCheckpoint(path.join(b, 'checkpoint.safetensors')).meta.step, 4);
    r = train(['--engine', 'torch', '--nproc-per-node', '2', '--resume', '--run-dir', b]);
    assert.equal(r.status, 0, r.stderr);
    const sa = steps(a);
    const sb = steps(b);
    assert.deepEqual(sb.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8], 'each step logged once after the stop, the failure and the resume');
    sa.forEach((s, i) => assert.ok(Math.abs(s.loss - sb[i].loss) <= 1e-5 * Math.abs(s.loss), `step ${s.step}: loss ${s.loss} uninterrupted, ${sb[i].loss} resumed`));
    const wa = loadCheckpoint(path.join(a, 'checkpoint.safetensors')).tensors.get('backbone.conv1.weight')!.data as Float32Array;
    const wb = loadCheckpoint(path.join(b, 'checkpoint.safetensors')).tensors.get('backbone.conv1.weight')!.data as Float32Array;
    assert.ok(wa.every((v, i) => Math.abs(v - wb[i]) <= 1e-6 + 1e-5 * Math.abs(v)), 'resumed weights differ from the uninterrupted run');

    // The engines continue each other's runs: ours takes one step of a third epoch from the
    // engine's checkpoint, the engine finishes that epoch from ours.
    r = train(['--resume', '--run-dir', a, '--epochs', '3', '--max-steps', '1']);
    assert.equal(r.status, 0, `our trainer could not resume the engine's run:\n${r.stderr}`);
    assert.equal(loadCheckpoint(path.join(a, 'checkpoint.safetensors')).meta.engine, undefined, 'our trainer wrote the checkpoint');
    r = train(['--engine', 'torch', '--nproc-per-node', '2', '--resume', '--run-dir', a, '--epochs', '3']);
    assert.equal(r.status, 0, `the engine could not resume our checkpoint:\n${r.stderr}`);
    const ext = readRunLog(a);
    assert.deepEqual(ext.steps.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.equal(ext.epochs.length, 3);
    assert.ok(ext.steps.every((s) => Number.isFinite(s.loss)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
