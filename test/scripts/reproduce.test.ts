import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findRun } from '../../lib/notebook';
import { pretrainConfig } from '../../lib/presets';
import { PROJECT_ROOT } from '../../scripts/jupyter';
import { jobOrder, needsAnotherSeed, pairs, parseReproduceArgs, resultsMarkdown, type Results, type RunResult } from '../../scripts/reproduce';

function run(framework: RunResult['framework'], method: RunResult['method'], seed: number, knnTop1: number, linearTop1 = knnTop1): RunResult {
  return {
    framework, method, seed, knnTop1, linearTop1, knnTop5: 99, linearTop5: 99, runDir: '', monitorKnnTop1: null, trainSeconds: 1, evalSeconds: 1,
    finalEmbeddingStd: null, backend: 'cpu', command: '', config: pretrainConfig(framework, 'fashion-mnist', 'smoke', { method, seed }),
  };
}

test('reproduce arguments: defaults, subsets of frameworks, clear errors', () => {
  const a = parseReproduceArgs([]);
  assert.ok(a !== 'help');
  assert.deepEqual([a.profile, a.out, a.frameworks.length, a.maxSeeds, a.linearEpochs, a.evalSubset], ['cpu', path.join('reports', 'fashion-mnist-cpu'), 4, 2, 100, null]);
  const b = parseReproduceArgs(['--profile', 'smoke', '--frameworks', 'byol, simsiam', '--eval-subset', '500']);
  assert.ok(b !== 'help');
  assert.deepEqual([b.frameworks, b.evalSubset, b.out], [['byol', 'simsiam'], 500, path.join('reports', 'fashion-mnist-smoke')]);
  assert.throws(() => parseReproduceArgs(['--frameworks', 'moco-v2,swav']), /--frameworks: 'swav' is not one of moco-v2, simclr, byol, simsiam/);
  assert.throws(() => parseReproduceArgs(['--profile', 'huge']), /--profile must be one of/);
  assert.throws(() => parseReproduceArgs(['--max-seeds', '0']), /--max-seeds must be an integer ≥ 1/);
  assert.equal(a.lanes, Math.min(2, os.availableParallelism()));
  const c = parseReproduceArgs(['--lanes', '1']);
  assert.ok(c !== 'help' && c.lanes === 1);
  assert.throws(() => parseReproduceArgs(['--lanes', '0']), /--lanes must be an integer ≥ 1, got '0'/);
});

test('the lanes get the longer MixMask runs first, then the baselines', () => {
  assert.deepEqual(jobOrder(['moco-v2', 'byol']), [
    { fw: 'moco-v2', method: 'mixmask' }, { fw: 'byol', method: 'mixmask' },
    { fw: 'moco-v2', method: 'none' }, { fw: 'byol', method: 'none' },
  ]);
});

test('pairs and the second-seed rule: only pairs closer than one kNN point get another seed, up to max-seeds', () => {
  const runs = [
    run('moco-v2', 'none', 0, 80.0), run('moco-v2', 'mixmask', 0, 80.9), // +0.9: reseed
    run('simclr', 'none', 0, 80.0), run('simclr', 'mixmask', 0, 78.5), // −1.5: decided
    run('byol', 'none', 0, 80.0), // unpaired: nothing to decide yet
  ];
  const ps = pairs(runs);
  assert.deepEqual(ps.map((p) => [p.framework, p.seed, Number(p.knnDiff.toFixed(2))]), [['moco-v2', 0, 0.9], ['simclr', 0, -1.5]]);
  assert.deepEqual(needsAnotherSeed(runs, ['moco-v2', 'simclr', 'byol', 'simsiam'], 2), ['moco-v2']);
  // With the second seed in, two seeds is the limit.
  const more = [...runs, run('moco-v2', 'none', 1, 81), run('moco-v2', 'mixmask', 1, 81.2)];
  assert.deepEqual(needsAnotherSeed(more, ['moco-v2'], 2), []);
  assert.deepEqual(needsAnotherSeed(more, ['moco-v2'], 3), ['moco-v2']);
});

test('results.md names the epochs of a framework that trains longer than the rest, in its line and its row', () => {
  const long = (x: RunResult): RunResult => ({ ...x, config: { ...x.config, epochs: 32 } });
  const runs = [
    run('moco-v2', 'none', 0, 80), run('moco-v2', 'mixmask', 0, 81), run('byol', 'none', 0, 80), run('byol', 'mixmask', 0, 81),
    long(run('simsiam', 'none', 0, 80)), long(run('simsiam', 'mixmask', 0, 79)),
  ];
  const results: Results = {
    format: 'test', dataset: 'fashion-mnist', profile: 'smoke', backend: 'cpu', backendReport: '', rawPixelKnn: 78.85, evalSubset: null,
    linearEpochs: 100, startedAt: '', updatedAt: '', runs,
  };
  const md = resultsMarkdown(results);
  assert.match(md, /, 2 epochs \(SimSiam: 32\) at batch /);
  assert.match(md, /\| MoCo v2 \| baseline \| 0 \| 2 \| 80\.00 \|/);
  assert.match(md, /\| SimSiam \| MixMask \| 0 \| 32 \| 79\.00 \|/);
  assert.match(resultsMarkdown({ ...results, runs: runs.slice(0, 4) }), /, 2 epochs at batch /);
});

test('npm run reproduce trains, evaluates, reseeds close pairs, writes the report, and resumes without retraining', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-repro-'));
  const out = path.join(root, 'fashion-mnist-smoke');
  const args = ['--profile', 'smoke', '--frameworks', 'simclr', '--eval-subset', '300', '--linear-epochs', '3', '--out', out, '--runs-root', path.join(root, 'runs')];
  const node = () => spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'scripts', 'reproduce.js'), ...args], { encoding: 'utf8', timeout: 8 * 60_000 });
  const first = node();
  assert.equal(first.status, 0, first.stderr);
  const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as Results;
  const p0 = pairs(r.runs).find((p) => p.seed === 0);
  assert.ok(p0, 'seed 0 pair present');
  // The rule, applied to what was measured: a second seed exactly when seed 0 was within a point.
  assert.equal(r.runs.length, Math.abs(p0.knnDiff) < 1 ? 4 : 2);
  for (const x of r.runs) {
    assert.ok(x.knnTop1 > 0 && x.knnTop1 <= 100 && x.linearTop1 > 0 && x.linearTop1 <= 100, JSON.stringify(x));
    assert.ok(x.trainSeconds > 0 && x.evalSeconds > 0);
    assert.match(x.command, new RegExp(`--framework simclr --method ${x.method} --dataset fashion-mnist --profile smoke --seed ${x.seed}`));
    assert.ok(fs.existsSync(path.join(out, x.runDir, 'log.jsonl')) && fs.existsSync(path.join(out, x.runDir, 'config.json')));
  }
  const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
  assert.match(md, /\| SimCLR \| baseline \| 0 \|/);
  assert.match(md, /\| SimCLR \| 0 \| [\d.]+ → [\d.]+ \| [+-][\d.]+ \|/);
  assert.ok(fs.existsSync(path.join(out, 'figure1.html')));
  // The committed logs sit where the notebooks look for finished runs.
  const cfg = pretrainConfig('simclr', 'fashion-mnist', 'smoke', { method: 'mixmask', seed: 0 });
  assert.equal(findRun(cfg, [root]), path.join(out, 'simclr-mixmask-block8-s0'));

  // A second call finds every run done: no training, identical results.
  const second = node();
  assert.equal(second.status, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /^== /m);
  const r2 = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as Results;
  assert.deepEqual(r2.runs, r.runs);
});
