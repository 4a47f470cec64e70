import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { syntheticDataset } from '../../lib/data';
import { pretrainConfig, RunConfig } from '../../lib/presets';
import { FRAMEWORKS } from '../../lib/frameworks';
import { loadCheckpoint } from '../../lib/train/checkpoint';
import { type EpochRecord, JsonlLog, type StepRecord } from '../../lib/train/log';
import { silentProgress } from '../../lib/train/progress';
import { CHECKPOINT_FILE, NonFiniteLossError, Trainer } from '../../lib/train/trainer';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

const train = syntheticDataset({ size: 64, numClasses: 4, seed: 1 });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-run-'));

function config(o: Partial<RunConfig> = {}): RunConfig {
  return { ...pretrainConfig('moco-v2', 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4, epochs: 3 }), ...o };
}

async function runFresh(dir: string, cfg: RunConfig, extra: Partial<ConstructorParameters<typeof Trainer>[0]> = {}) {
  const t = new Trainer({ config: cfg, runDir: dir, train, progress: silentProgress, ...extra });
  try {
    return await t.run();
  } finally {
    t.dispose();
  }
}

const steps = (dir: string) => JsonlLog.read(path.join(dir, 'log.jsonl')).filter((r) => r.type === 'step');

test('logs every step and epoch with loss terms, λ, lr, throughput and the collapse indicator; calls the monitor', async () => {
  const dir = tmp();
  const seen: number[] = [];
  const summary = await runFresh(dir, config({ epochs: 2 }), {
    monitor: async (backbone, epoch) => {
      assert.equal(backbone.featureDim, 32);
      seen.push(epoch);
      return { top1: 10 * epoch };
    },
  });
  assert.equal(summary.status, 'completed');
  assert.deepEqual(seen, [1, 2]);
  const records = JsonlLog.read(path.join(dir, 'log.jsonl'));
  const s = records.filter((r): r is StepRecord => r.type === 'step');
  const e = records.filter((r): r is EpochRecord => r.type === 'epoch');
  assert.equal(s.length, 8); // 64 images / batch 16 × 2 epochs
  assert.equal(e.length, 2);
  for (const r of s) {
    for (const k of ['loss', 'lambda', 'lr', 'imgPerSec', 'embeddingStd'] as const) assert.equal(typeof r[k], 'number', `step record lacks ${k}`);
    assert.deepEqual(Object.keys(r.terms as object).sort(), ['base', 'mix0.own', 'mix0.partner']);
  }
  assert.equal(e[1].knnTop1, 20);
  assert.ok(fs.existsSync(path.join(dir, CHECKPOINT_FILE)));
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).framework, 'moco-v2');
});

test('an abort raised by a timer or signal handler (a macrotask) stops the run after the current step, not at the epoch end', async () => {
  const dir = tmp();
  const abort = new AbortController();
  const summary = await runFresh(dir, config({ epochs: 1 }), {
    signal: abort.signal,
    beforeUpdate: (step) => {
      if (step === 0) setImmediate(() => abort.abort()); // how a SIGTERM handler arrives
    },
  });
  assert.equal(summary.status, 'stopped');
  assert.ok(summary.step <= 2, `stopped at step ${summary.step} of 4`);
});

test('resuming a finished run trains nothing and says so, with the last logged loss', async () => {
  const dir = tmp();
  const cfg = config({ epochs: 1 });
  const first = await runFresh(dir, cfg);
  const lines: string[] = [];
  const again = await runFresh(dir, cfg, { resume: true, progress: { ...silentProgress, done: (line: string) => lines.push(line) } });
  assert.equal(again.status, 'completed');
  assert.equal(again.step, first.step);
  assert.equal(again.lastLoss, first.lastLoss);
  assert.equal(steps(dir).length, 4, 'no step was added to the log');
  assert.equal(lines.length, 1);
  assert.match(lines[0], /already complete \(1 epochs, step 4\), nothing to train; last loss \d/);
});

test('a run stopped mid-epoch and resumed continues exactly like an uninterrupted run', async () => {
  const cfg = config({ epochs: 2 });
  const whole = tmp();
  await runFresh(whole, cfg);

  const split = tmp();
  const first = await runFresh(split, cfg, { maxSteps: 3 }); // stops inside epoch 1
  assert.equal(first.status, 'stopped');
  assert.equal(steps(split).length, 3);
  const resumed = await runFresh(split, cfg, { resume: true });
  assert.equal(resumed.status, 'completed');

  const a = steps(whole);
  const b = steps(split);
  assert.equal(b.length, a.length);
  a.forEach((r, i) => {
    assert.equal(b[i].step, r.step);
    assert.ok(Math.abs((b[i].loss as number) - (r.loss as number)) < 1e-5, `step ${r.step}: ${b[i].loss} vs ${r.loss}`);
    assert.equal(b[i].lambda, r.lambda);
    assert.equal(b[i].lr, r.lr);
  });
  const ea = JsonlLog.read(path.join(whole, 'log.jsonl')).filter((r) => r.type === 'epoch');
  const eb = JsonlLog.read(path.join(split, 'log.jsonl')).filter((r) => r.type === 'epoch');
  assert.ok(Math.abs((ea[0].loss as number) - (eb[0].loss as number)) < 1e-5, 'epoch means differ after resume');
});

for (const framework of FRAMEWORKS) {
  test(`${framework}: the run config's asymmetric: false reaches the loss the trainer optimises`, async () => {
    const base = { method: 'mixmask' as const, gridSize: 4, epochs: 1 };
    const on = pretrainConfig(framework, 'synthetic', 'smoke', base);
    const off = pretrainConfig(framework, 'synthetic', 'smoke', { ...base, asymmetric: false });
    assert.equal(on.view.asymmetric, undefined, 'the default (on) is not written into the config');
    assert.equal(off.view.asymmetric, false);
    const [dirOn, dirOff] = [tmp(), tmp()];
    await runFresh(dirOn, on, { maxSteps: 2 });
    await runFresh(dirOff, off, { maxSteps: 2 });
    for (const r of steps(dirOn)) assert.deepEqual(Object.keys(r.terms as object).sort(), ['base', 'mix0.own', 'mix0.partner']);
    for (const r of steps(dirOff)) assert.deepEqual(Object.keys(r.terms as object).sort(), ['base', 'mix0.plain']);
    // Same data, masks and initial weights; only the loss differs, so the base term of step 1 agrees…
    const [a, b] = [steps(dirOn)[0], steps(dirOff)[0]];
    assert.ok(Math.abs((a.terms as Record<string, number>).base - (b.terms as Record<string, number>).base) < 1e-5);
    assert.equal(a.lambda, b.lambda);
    // …and the weights trained from it do not.
    const wOn = loadCheckpoint(path.join(dirOn, CHECKPOINT_FILE)).tensors;
    const wOff = loadCheckpoint(path.join(dirOff, CHECKPOINT_FILE)).tensors;
    const key = [...wOn.keys()].find((k) => k.startsWith('backbone.') && k.includes('conv'))!;
    const [x, y] = [wOn.get(key)!.data as Float32Array, wOff.get(key)!.data as Float32Array];
    const diff = Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i])));
    assert.ok(diff > 1e-7, `${key} is the same after two steps with the asymmetric loss on and off`);
  });
}

test('a NaN loss stops the run with a clear message and leaves the last good checkpoint intact', async () => {
  const dir = tmp();
  const cfg = config({ epochs: 3 });
  let trainer: Trainer | null = null;
  let goodCheckpoint: Buffer | null = null;
  trainer = new Trainer({
    config: cfg, runDir: dir, train, progress: silentProgress,
    beforeUpdate: (step) => {
      if (step === 5) {
        // After epoch 1's checkpoint: poison a weight, as a diverging run would (one after the
        // last ReLU, which would map NaN to 0 on some backends).
        goodCheckpoint = fs.readFileSync(path.join(dir, CHECKPOINT_FILE));
        const w = new Map(trainer!.framework.namedParameters()).get('projector.1.linear.bias')!;
        w.assign(tf.fill(w.shape, NaN));
      }
    },
  });
  await assert.rejects(trainer.run(), (e: Error) => {
    assert.ok(e instanceof NonFiniteLossError);
    assert.match(e.message, /the loss became NaN at epoch 2, step 3/);
    assert.match(e.message, /last good checkpoint is .*checkpoint\.safetensors/);
    return true;
  });
  trainer.dispose();
  assert.ok(goodCheckpoint);
  assert.ok(fs.readFileSync(path.join(dir, CHECKPOINT_FILE)).equals(goodCheckpoint!), 'checkpoint changed after the NaN');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint.safetensors', 'config.json', 'log.jsonl']);
});

test('schedule.fixedLrModules: the predictor keeps the base rate, the backbone follows the schedule', async () => {
  // A step schedule already at 0.1 × base on the first step. SimSiam's first SGD update is
  // lr·(g + wd·w) with the same g either way (same seed, same batch), so fixing the predictor's
  // rate multiplies its update by 10 and leaves the backbone's as it was.
  const base = pretrainConfig('simsiam', 'synthetic', 'smoke', { method: 'none', epochs: 1 });
  const firstUpdate = async (fixedLrModules: string[]) => {
    const cfg: RunConfig = { ...base, schedule: { kind: 'step', milestones: [0], gamma: 0.1, fixedLrModules } };
    let after = new Map<string, number[]>();
    const t: Trainer = new Trainer({
      config: cfg, runDir: tmp(), train, progress: silentProgress,
      beforeUpdate: (step) => {
        if (step === 1) after = snapshot();
      },
    });
    const snapshot = () => new Map(t.framework.namedTrainable().map(([n, v]) => [n, Array.from(v.dataSync())]));
    const before = snapshot();
    try {
      await t.run();
    } finally {
      t.dispose();
    }
    const delta = (prefix: string) => Math.hypot(...[...before].filter(([n]) => n.startsWith(prefix)).flatMap(([n, v]) => v.map((x, i) => after.get(n)![i] - x)));
    return { backbone: delta('backbone.'), predictor: delta('predictor.') };
  };
  const scheduled = await firstUpdate([]);
  const fixed = await firstUpdate(['predictor']);
  assert.ok(scheduled.backbone > 0 && scheduled.predictor > 0);
  assert.ok(Math.abs(fixed.backbone / scheduled.backbone - 1) < 1e-3, `backbone update changed: ${scheduled.backbone} → ${fixed.backbone}`);
  assert.ok(Math.abs(fixed.predictor / scheduled.predictor - 10) < 1e-2, `predictor update ratio ${fixed.predictor / scheduled.predictor}, expected 10`);
  assert.throws(
    () => new Trainer({ config: { ...config(), schedule: { kind: 'cosine', fixedLrModules: ['predictor'] } }, runDir: tmp(), train }),
    /schedule\.fixedLrModules: 'predictor' is not a trainable module here; expected one of backbone, projector/,
  );
});

test('corrupt or mismatched checkpoints give clear errors', async () => {
  const dir = tmp();
  const cfg = config({ epochs: 1 });
  await runFresh(dir, cfg);
  const file = path.join(dir, CHECKPOINT_FILE);
  const good = fs.readFileSync(file);

  await assert.rejects(runFresh(dir, cfg), /already holds a run/);
  await assert.rejects(runFresh(dir, { ...cfg, backbone: { ...cfg.backbone, width: 8 } }, { resume: true }), /trained with backbone = .*"width":4.*this run asks for .*"width":8/);
  fs.writeFileSync(file, good.subarray(0, good.length - 100));
  await assert.rejects(runFresh(dir, cfg, { resume: true }), new RegExp(`${file.replace(/[.]/g, '\\.')}: tensor ".*" spans bytes`));
  fs.writeFileSync(file, Buffer.from('not a checkpoint at all'));
  await assert.rejects(runFresh(dir, cfg, { resume: true }), /truncated safetensors file|not a safetensors file|unreadable safetensors header/);
  await assert.rejects(runFresh(tmp(), cfg, { resume: true }), /cannot resume: .*checkpoint\.safetensors does not exist/);
});

test('no tensors leak across epochs', async () => {
  const counts: number[] = [];
  await runFresh(tmp(), config({ epochs: 3 }), {
    monitor: async () => {
      counts.push(tf.memory().numTensors);
      return { top1: 0 };
    },
  });
  assert.equal(counts.length, 3);
  assert.deepEqual(counts, [counts[0], counts[0], counts[0]]);
});
