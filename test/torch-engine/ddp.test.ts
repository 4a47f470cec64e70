/**
 * DistributedDataParallel in the PyTorch engine: two processes (torchrun, gloo) with 8 images
 * each against one process with the same 16 images → the same loss and the same update of
 * every tensor after one SGD step, with SyncBatchNorm. Without it each rank normalises its own
 * 8 rows, so the numbers differ (measured and stated below); MoCo's key encoder keeps its
 * per-rank BatchNorm behind the cross-rank key shuffle either way, which equals our one-device
 * emulation with bnSplits = 2.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PYTHON, ROOT, pyEnv, skip } from './common';
import { freePort } from '../../lib/experiments/torch-engine';

const HELPER = path.join(ROOT, 'test', 'torch-engine', 'ddp_helper.py');
const TORCHRUN = process.env.MIXMASK_TORCHRUN || '/usr/bin/torchrun';
const BACKBONE = { depth: 18, stem: 'cifar', width: 4, seed: 0 };
const HEADS = { dim: 16, projHidden: 32, predHidden: 32, temperature: 0.2, queueSize: 64, targetMomentum: 0.99, bnSplits: 2 };
// Methods whose extra view needs no partner from another rank: none and erase (a mixmask
// partner is a row of the rank's own batch, as in the official per-GPU code).
const CASES = [
  { framework: 'byol', view: { method: 'erase' } },
  { framework: 'simsiam', view: { method: 'none' } },
  { framework: 'moco-v2', view: { method: 'erase' } },
  { framework: 'simclr', view: { method: 'none' } },
];

interface Result {
  loss: number;
  terms: Record<string, number>;
  update: Record<string, number[]>;
}

/**
 * Max-abs difference over the max-abs of `b`, that scale floored at `floor`: a bias right before
 * a BatchNorm has a gradient that is zero in exact arithmetic, and its update is rounding noise.
 */
function maxRel(a: number[], b: number[], floor: number): number {
  let num = 0;
  let den = floor;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

test('torch engine DDP: 2 processes × 8 images = 1 process × 16 images after one step (SyncBatchNorm)', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-torch-ddp-'));
  try {
    const cases = CASES.flatMap((c) => [true, false].map((syncBn) => ({ syncBn, config: { ...c, backbone: BACKBONE, heads: HEADS, seed: 0 } })));
    const one = path.join(dir, 'one.json');
    const two = path.join(dir, 'two.json');
    let r = spawnSync(PYTHON, [HELPER, JSON.stringify({ out: one, cases })], { encoding: 'utf8', env: pyEnv(), timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const rdzv = ['--rdzv_backend', 'c10d', '--rdzv_endpoint', `127.0.0.1:${await freePort()}`, '--rdzv_id', 'ddp-test'];
    r = spawnSync(TORCHRUN, [...rdzv, '--nnodes', '1', '--nproc_per_node', '2', '--redirects', '1', '--tee', '1', '--log_dir', path.join(dir, 'logs'), HELPER, JSON.stringify({ out: two, cases })], {
      encoding: 'utf8', env: pyEnv(), timeout: 300_000,
    });
    assert.equal(r.status, 0, `torchrun failed:\n${r.stdout}\n${r.stderr}`);
    const a = JSON.parse(fs.readFileSync(one, 'utf8')) as Result[];
    const b = JSON.parse(fs.readFileSync(two, 'utf8')) as Result[];
    cases.forEach((c, i) => {
      const what = `${c.config.framework} + ${c.config.view.method}${c.syncBn ? ', SyncBatchNorm' : ', per-rank BatchNorm'}`;
      const lossErr = Math.abs(a[i].loss - b[i].loss) / Math.abs(a[i].loss);
      let worst = 0;
      let worstName = '';
      let scale = 0;
      for (const u of Object.values(a[i].update)) for (const v of u) scale = Math.max(scale, Math.abs(v));
      for (const [name, u] of Object.entries(a[i].update)) {
        if (name.endsWith('num_batches_tracked')) continue;
        // MoCo's key encoder: one device runs its two shuffle-BN chunks one after the other, so
        // its running statistics take two momentum steps; each rank takes one. Not a training tensor.
        if (c.config.framework.startsWith('moco') && name.startsWith('target.') && name.includes('running_')) continue;
        const e = maxRel(b[i].update[name], u, 1e-4 * scale);
        if (e > worst) [worst, worstName] = [e, name];
      }
      t.diagnostic(`${what}: loss ${a[i].loss.toFixed(6)} vs ${b[i].loss.toFixed(6)} (relative ${lossErr.toExponential(1)}), worst update ${worstName} ${worst.toExponential(1)}`);
      if (c.syncBn) {
        assert.ok(lossErr < 1e-5, `${what}: loss ${a[i].loss} vs ${b[i].loss}`);
        assert.ok(worst < 1e-3, `${what}: the update of ${worstName} differs by ${worst}`);
      } else {
        // Per-rank statistics are a different computation: the difference is far above rounding.
        assert.ok(worst > 1e-3, `${what}: without SyncBatchNorm the update should differ, worst ${worst}`);
      }
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
