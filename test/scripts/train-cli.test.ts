import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseTrainArgs } from '../../scripts/train';
import { runTitle } from '../../lib/train/trainer';
import { PROJECT_ROOT } from '../../scripts/jupyter';

test('train arguments: defaults from the preset, overrides, clear errors', () => {
  const a = parseTrainArgs(['--framework', 'moco', '--dataset', 'cifar100', '--profile', 'paper', '--grid', '4', '--ratio', '0.25']);
  assert.ok(a !== 'help');
  assert.equal(a.config.framework, 'moco-v2');
  assert.deepEqual([a.config.view.method, a.config.view.gridSize, a.config.view.ratio], ['mixmask', 4, 0.25]);
  assert.equal(a.runDir, path.join('runs', 'cifar100-paper', 'moco-v2-mixmask-block4-s0'));
  assert.equal(a.config.minCropScale, undefined);
  const b = parseTrainArgs(['--framework', 'simclr', '--dataset', 'fashion-mnist', '--profile', 'cpu', '--min-crop-scale', '0.3']);
  assert.ok(b !== 'help');
  assert.equal(b.config.minCropScale, 0.3);
  assert.throws(() => parseTrainArgs(['--framework', 'simclr', '--dataset', 'fashion-mnist', '--profile', 'cpu', '--min-crop-scale', '1.5']), /--min-crop-scale must be a number in \[0, 1\], got '1.5'/);
  const off = parseTrainArgs(['--framework', 'byol', '--dataset', 'cifar100', '--profile', 'cpu', '--no-asymmetric']);
  assert.ok(off !== 'help');
  assert.equal(off.config.view.asymmetric, false);
  assert.equal(off.runDir, path.join('runs', 'cifar100-cpu', 'byol-mixmask-block8-noasym-val-s0'));
  const old = parseTrainArgs(['--framework', 'byol', '--dataset', 'fashion-mnist', '--profile', 'cpu', '--no-validation']);
  assert.ok(old !== 'help' && off.config.validation !== null);
  assert.deepEqual([old.config.validation, old.runDir], [null, path.join('runs', 'fashion-mnist-cpu', 'byol-mixmask-block8-s0')]);
  assert.equal(runTitle(off.config), 'byol + mixmask (block, g = 8, r = 0.5, asymmetric off)');
  assert.equal(runTitle(a.config), 'moco-v2 + mixmask (block, g = 4, r = 0.25)');
  assert.throws(() => parseTrainArgs(['--framework', 'byol', '--dataset', 'cifar100', '--profile', 'cpu', '--method', 'erase', '--no-asymmetric']), /method 'erase' has no partner/);
  assert.equal(parseTrainArgs(['--help']), 'help');
  assert.throws(() => parseTrainArgs(['--framework', 'swav', '--dataset', 'cifar100', '--profile', 'cpu']), /--framework must be one of .*got 'swav'/);
  assert.throws(() => parseTrainArgs(['--framework', 'byol', '--dataset', 'cifar100']), /--profile is required/);
  assert.throws(() => parseTrainArgs(['--framework', 'byol', '--dataset', 'cifar100', '--profile', 'cpu', '--ratio', '2']), /--ratio must be a number in \[0, 1\], got '2'/);
  assert.throws(() => parseTrainArgs(['--framework', 'byol', '--dataset', 'cifar100', '--profile', 'cpu', '--epochs', '1.5']), /--epochs must be an integer ≥ 1, got '1.5'/);
  assert.throws(() => parseTrainArgs(['--framework', 'byol', '--lr', '3']), /unknown option --lr/);
  assert.throws(() => parseTrainArgs(['--resume', '--run-dir', '/nonexistent/run']), /--resume: .*config\.json does not exist/);
});

test('npm run train writes a run that --resume continues and npm run eval reads', () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-cli-')), 'run');
  const node = (script: string, args: string[]) =>
    spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'scripts', script), ...args], {
      encoding: 'utf8', env: { ...process.env, MIXMASK_BACKEND: 'wasm' }, timeout: 5 * 60_000,
    });
  const first = node('train.js', ['--framework', 'simsiam', '--method', 'mixmask', '--dataset', 'synthetic', '--profile', 'smoke', '--run-dir', dir, '--max-steps', '3']);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(JSON.parse(first.stdout.trim().split('\n').pop()!).status, 'stopped');
  const second = node('train.js', ['--resume', '--run-dir', dir]);
  assert.equal(second.status, 0, second.stderr);
  const summary = JSON.parse(second.stdout.trim().split('\n').pop()!);
  assert.deepEqual([summary.status, summary.step], ['completed', 8]);
  const epochs = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'epoch');
  assert.equal(epochs.length, 2);
  assert.ok(epochs.every((e) => typeof e.knnTop1 === 'number'));

  const out = path.join(dir, 'knn.json');
  const ev = node('evaluate.js', ['--checkpoint', path.join(dir, 'checkpoint.safetensors'), '--dataset', 'synthetic', '--protocol', 'knn', '--k', '20', '--out', out, '--quiet']);
  assert.equal(ev.status, 0, ev.stderr);
  const result = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(result.checkpointMeta.framework, 'simsiam');
  assert.ok(result.top1 >= 0 && result.top1 <= 100);
});
