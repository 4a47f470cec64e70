/**
 * `npm run train -- --engine torch`: the arguments it takes and the torchrun line it prints.
 * Needs no PyTorch (nothing is started).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseTrainArgs } from '../../scripts/train';
import { shellLine, torchCommand, torchEngineDir } from '../../lib/experiments/torch-engine';

const TORCH_ENGINE_DIR = torchEngineDir();
import { ROOT } from './common';

const BASE = ['--framework', 'byol', '--dataset', 'fashion-mnist', '--profile', 'smoke', '--run-dir', '/tmp/r un'];

test('--engine torch: one machine runs a standalone torchrun; several meet at --rdzv-endpoint', () => {
  const one = parseTrainArgs([...BASE, '--engine', 'torch', '--nproc-per-node', '2', '--max-steps', '5']);
  assert.ok(one !== 'help' && one.torch);
  assert.deepEqual(one.torch, { nprocPerNode: 2, nnodes: 1, rdzvEndpoint: undefined, printCommand: false });
  const c1 = torchCommand({ ...one, launch: one.torch! }, {});
  assert.equal(c1.program, 'torchrun');
  assert.deepEqual(c1.env, { PYTHONPATH: TORCH_ENGINE_DIR });
  assert.deepEqual(c1.args, ['--nnodes', '1', '--nproc_per_node', '2', '--standalone', '--redirects', '1', '--tee', '1', '--log_dir', '/tmp/r un/torchrun-logs',
    '-m', 'mixmask_torch_engine', '--run-dir', '/tmp/r un', '--max-steps', '5']);
  assert.equal(shellLine(c1.env, c1.program, c1.args).split(' --run-dir ')[1], `'/tmp/r un' --max-steps 5`);

  const many = parseTrainArgs([...BASE, '--engine', 'torch', '--nproc-per-node', '8', '--nnodes', '4', '--rdzv-endpoint', 'node01:29400']);
  assert.ok(many !== 'help' && many.torch);
  const c2 = torchCommand({ ...many, launch: many.torch! }, { MIXMASK_TORCHRUN: '/opt/venv/bin/torchrun' });
  assert.equal(c2.program, '/opt/venv/bin/torchrun');
  assert.deepEqual(c2.args.slice(0, 10), ['--nnodes', '4', '--nproc_per_node', '8', '--rdzv_backend', 'c10d', '--rdzv_endpoint', 'node01:29400', '--rdzv_id', 'r un']);
});

test('--engine torch: bad or misplaced launch options are named', () => {
  assert.throws(() => parseTrainArgs([...BASE, '--nproc-per-node', '2']), /--nproc-per-node needs --engine torch/);
  assert.throws(() => parseTrainArgs([...BASE, '--print-command']), /--print-command needs --engine torch/);
  assert.throws(() => parseTrainArgs([...BASE, '--engine', 'torch', '--nnodes', '2']), /--nnodes 2 needs --rdzv-endpoint/);
  assert.throws(() => parseTrainArgs([...BASE, '--engine', 'torch', '--rdzv-endpoint', 'node01']), /--rdzv-endpoint must be host:port, got "node01"/);
  assert.throws(() => parseTrainArgs([...BASE, '--engine', 'jax']), /--engine/);
  const plain = parseTrainArgs(BASE);
  assert.ok(plain !== 'help' && plain.torch === undefined, 'the default engine stays tfjs');
});

test('--print-command writes config.json and prints the torchrun line without running it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-torch-launch-'));
  try {
    const runDir = path.join(dir, 'run');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'train.js'), '--engine', 'torch', '--framework', 'simsiam', '--method', 'both',
      '--dataset', 'cifar10', '--profile', 'cpu', '--run-dir', runDir, '--nproc-per-node', '4', '--print-command'], { encoding: 'utf8', env: { ...process.env, MIXMASK_TORCHRUN: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `PYTHONPATH=${TORCH_ENGINE_DIR} torchrun --nnodes 1 --nproc_per_node 4 --standalone --redirects 1 --tee 1 --log_dir ${runDir}/torchrun-logs -m mixmask_torch_engine --run-dir ${runDir}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as { framework: string; view: { method: string } };
    assert.equal(cfg.framework, 'simsiam');
    assert.equal(cfg.view.method, 'both');
    assert.ok(!fs.existsSync(path.join(runDir, 'log.jsonl')), 'nothing was trained');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
