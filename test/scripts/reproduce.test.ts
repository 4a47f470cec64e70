import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findRun } from '../../lib/notebook';
import { pretrainConfig } from '../../lib/presets';
import { PROJECT_ROOT } from '../../scripts/jupyter';
import {
  figure1, frameworkSummaries, jobOrder, pairs, parseReproduceArgs, readmeBlock, resultsMarkdown, resultsMarkers, writeMarkedBlock, type Results, type RunResult,
} from '../../scripts/reproduce';

function run(framework: RunResult['framework'], method: RunResult['method'], seed: number, knnTop1: number, linearTop1 = knnTop1): RunResult {
  return {
    framework, method, seed, knnTop1, linearTop1, knnTop5: 99, linearTop5: 99, runDir: '', monitorKnnTop1: null, trainSeconds: 1, evalSeconds: 1,
    finalEmbeddingStd: null, backend: 'cpu', command: '', config: pretrainConfig(framework, 'fashion-mnist', 'smoke', { method, seed }),
  };
}

test('reproduce arguments: defaults, subsets of frameworks, clear errors', () => {
  const a = parseReproduceArgs([]);
  assert.ok(a !== 'help');
  assert.deepEqual([a.profile, a.out, a.frameworks.length, a.seeds, a.linearEpochs, a.evalSubset, a.validate, a.regenerate], ['cpu', path.join('reports', 'fashion-mnist-cpu'), 4, 3, 100, null, false, null]);
  const b = parseReproduceArgs(['--profile', 'smoke', '--frameworks', 'byol, simsiam', '--eval-subset', '500']);
  assert.ok(b !== 'help');
  assert.deepEqual([b.frameworks, b.evalSubset, b.out], [['byol', 'simsiam'], 500, path.join('reports', 'fashion-mnist-smoke')]);
  assert.throws(() => parseReproduceArgs(['--frameworks', 'moco-v2,swav']), /--frameworks: 'swav' is not one of moco-v2, simclr, byol, simsiam/);
  assert.throws(() => parseReproduceArgs(['--profile', 'huge']), /--profile must be one of/);
  assert.throws(() => parseReproduceArgs(['--seeds', '0']), /--seeds must be an integer ≥ 1, got '0'/);
  const v = parseReproduceArgs(['--seeds', '5', '--validate']);
  assert.ok(v !== 'help' && v.seeds === 5 && v.validate);
  assert.equal(a.lanes, Math.min(2, os.availableParallelism()));
  const c = parseReproduceArgs(['--lanes', '1']);
  assert.ok(c !== 'help' && c.lanes === 1);
  assert.throws(() => parseReproduceArgs(['--lanes', '0']), /--lanes must be an integer ≥ 1, got '0'/);
  assert.equal(a.epochs, null);
  // A budget variant: validation only, in its own results folder and runs root.
  assert.throws(() => parseReproduceArgs(['--epochs', '16']), /--epochs \(a budget variant\) needs --validate/);
  const e = parseReproduceArgs(['--epochs', '16', '--validate', '--frameworks', 'simsiam']);
  assert.ok(e !== 'help');
  assert.deepEqual([e.epochs, e.out, e.runsRoot], [16, path.join('reports', 'fashion-mnist-cpu-epochs16'), path.join('runs', 'epochs16')]);
});

test('the lanes get the runs seed by seed, the longer MixMask runs first within a seed', () => {
  assert.deepEqual(jobOrder(['moco-v2', 'byol'], 2), [
    { fw: 'moco-v2', method: 'mixmask', seed: 0 }, { fw: 'byol', method: 'mixmask', seed: 0 },
    { fw: 'moco-v2', method: 'none', seed: 0 }, { fw: 'byol', method: 'none', seed: 0 },
    { fw: 'moco-v2', method: 'mixmask', seed: 1 }, { fw: 'byol', method: 'mixmask', seed: 1 },
    { fw: 'moco-v2', method: 'none', seed: 1 }, { fw: 'byol', method: 'none', seed: 1 },
  ]);
});

const close = (a: number | null, b: number, what: string) => assert.ok(a !== null && Math.abs(a - b) < 1e-6, `${what}: ${a}, expected ${b}`);

test('per framework over seeds: mean ± sd of each method, the paired difference with its 95 % t-interval', () => {
  const runs = [
    run('moco-v2', 'none', 0, 80, 82), run('moco-v2', 'mixmask', 0, 81, 82.5),
    run('moco-v2', 'none', 1, 79, 81), run('moco-v2', 'mixmask', 1, 81, 82),
    run('moco-v2', 'none', 2, 81, 83), run('moco-v2', 'mixmask', 2, 84, 82.5),
    run('byol', 'none', 0, 80), run('byol', 'mixmask', 0, 79), // one seed
    run('simclr', 'none', 0, 80), // unpaired: not summarised
  ];
  assert.deepEqual(pairs(runs).map((p) => [p.framework, p.seed]), [['moco-v2', 0], ['moco-v2', 1], ['moco-v2', 2], ['byol', 0]]);
  const [moco, byol] = frameworkSummaries(runs);
  assert.deepEqual(moco.seeds, [0, 1, 2]);
  close(moco.knn.baseline.mean, 80, 'baseline mean');
  close(moco.knn.baseline.sd, 1, 'baseline sd');
  close(moco.knn.mixmask.mean, 82, 'MixMask mean');
  close(moco.knn.mixmask.sd, Math.sqrt(3), 'MixMask sd');
  // Differences +1, +2, +3: mean 2, sd 1, half-width t(0.975, 2) / √3 = 4.302653 / 1.732051 = 2.484138.
  close(moco.knn.diff.mean, 2, 'Δ mean');
  close(moco.knn.diff.low, 2 - 2.484138, 'Δ low');
  close(moco.knn.diff.high, 2 + 2.484138, 'Δ high');
  assert.equal(moco.knn.diff.excludesZero, false);
  // Linear differences +0.5, +1, −0.5: mean 1/3.
  close(moco.linear.diff.mean, 1 / 3, 'linear Δ');
  assert.equal(byol.knn.diff.sd, null);
  assert.equal(byol.knn.diff.low, null);
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
  // The summary names the longer framework's epochs; one seed gives no interval.
  assert.match(md, /\| SimSiam \(32 epochs\) \| 0 \| 80\.00 \| 79\.00 \| -1\.00 \(one seed: no interval\) \| – \|/);
});

test('results.md and the README block say which split every number comes from, and come from the results alone', () => {
  const seeds = [0, 1, 2];
  const runs = seeds.flatMap((sd) => [run('simclr', 'none', sd, 80 + sd), run('simclr', 'mixmask', sd, 81.5 + sd + sd / 10)]);
  const base: Results = {
    format: 'test', dataset: 'fashion-mnist', profile: 'smoke', backend: 'cpu', backendReport: '', evalSplit: 'test', rawPixelKnn: 78.85, evalSubset: null,
    linearEpochs: 100, startedAt: '', updatedAt: '2026-12-03T00:00:00Z', runs,
  };
  const md = resultsMarkdown(base);
  assert.match(md, /\| framework \| seeds \| kNN baseline \(test\) \| kNN MixMask \(test\) \| Δ kNN \[95 % CI\] \| excludes 0 \|/);
  // Δ = 1.5, 1.6, 1.7: mean 1.6, sd 0.1, interval 1.6 ∓ 0.248414 = [1.35, 1.85]: excludes zero.
  assert.match(md, /\| SimCLR \| 0, 1, 2 \| 81\.00 ± 1\.00 \| 82\.60 ± 1\.10 \| \+1\.60 \[\+1\.35, \+1\.85\] \| yes \|/);
  assert.match(md, /Final numbers \(kNN, linear\): \*\*test split\*\*, touched once per encoder/);
  assert.match(md, /Monitor .*: the kNN monitor queried the validation split: 10,000 training images held out/);
  assert.match(md, /\| SimCLR \| MixMask \| 2 \| 2 \| 83\.70 \| 83\.70 \| yes \| – \(validation\) \|/);
  const val = resultsMarkdown({ ...base, evalSplit: 'validation', rawPixelKnn: 70.1 });
  assert.match(val, /kNN baseline \(validation\)/);
  assert.match(val, /\*\*validation split\*\* \(for budget decisions; no test image read\)/);
  assert.doesNotMatch(val, /\(test\)/);
  // Old-protocol runs (no validation split) say their monitor was on test.
  const old = runs.map((x) => ({ ...x, config: { ...x.config, validation: null } }));
  const oldMd = resultsMarkdown({ ...base, runs: old }, 'results-old.json');
  assert.match(oldMd, /the kNN monitor queried the \*\*test\*\* split and nothing was held out/);
  assert.match(oldMd, /`npm run train -- --framework simclr --method mixmask --dataset fashion-mnist --profile smoke --seed 2 --no-validation`/);
  assert.match(oldMd, /no longer runs; each run's command below retrains it\. Generated from results-old\.json by the script/);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-readme-'));
  const file = path.join(dir, 'README.md');
  const [open, close_] = resultsMarkers('fashion-mnist-smoke');
  fs.writeFileSync(file, `# title\n\nprose 1\n\n${open}\nold table 12.34\n${close_}\n\nprose 2\n`);
  assert.equal(writeMarkedBlock(file, 'fashion-mnist-smoke', readmeBlock(base, 'results.json')), true);
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.startsWith('# title\n\nprose 1\n\n<!-- results:fashion-mnist-smoke -->\nGenerated by `npm run reproduce` from [results.json](results.json)'));
  assert.ok(text.endsWith(`${close_}\n\nprose 2\n`));
  assert.doesNotMatch(text, /12\.34/);
  assert.match(text, /final numbers on the \*\*test split\*\*, kNN monitor on the \*\*validation\*\* split/);
  assert.match(text, /\| SimCLR \| 0, 1, 2 \| 81\.00 ± 1\.00 \|/);
  fs.writeFileSync(file, 'no markers\n');
  assert.equal(writeMarkedBlock(file, 'fashion-mnist-smoke', 'x'), false);
  assert.equal(fs.readFileSync(file, 'utf8'), 'no markers\n');
});

test('npm run reproduce: three seeds per pair, the report from results.json, resumes without retraining, --validate and --regenerate', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-repro-'));
  const out = path.join(root, 'fashion-mnist-smoke');
  const common = ['--profile', 'smoke', '--frameworks', 'simclr', '--eval-subset', '300', '--linear-epochs', '3', '--out', out, '--runs-root', path.join(root, 'runs')];
  const node = (...extra: string[]) => spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'scripts', 'reproduce.js'), ...common, ...extra], { encoding: 'utf8', timeout: 8 * 60_000 });
  fs.mkdirSync(out, { recursive: true });
  const [open, close_] = resultsMarkers('fashion-mnist-smoke');
  fs.writeFileSync(path.join(out, 'README.md'), `# notes\n\n${open}\n${close_}\n`);
  const first = node();
  assert.equal(first.status, 0, first.stderr);
  const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as Results;
  assert.equal(r.evalSplit, 'test');
  assert.deepEqual(r.runs.map((x) => [x.method, x.seed]), [['none', 0], ['mixmask', 0], ['none', 1], ['mixmask', 1], ['none', 2], ['mixmask', 2]]);
  for (const x of r.runs) {
    assert.ok(x.knnTop1 > 0 && x.knnTop1 <= 100 && x.linearTop1 > 0 && x.linearTop1 <= 100, JSON.stringify(x));
    assert.ok(x.trainSeconds > 0 && x.evalSeconds > 0);
    assert.deepEqual(x.config.validation, { images: 10_000, seed: 2024 });
    assert.match(x.command, new RegExp(`--framework simclr --method ${x.method} --dataset fashion-mnist --profile smoke --seed ${x.seed}`));
    assert.ok(fs.existsSync(path.join(out, x.runDir, 'log.jsonl')) && fs.existsSync(path.join(out, x.runDir, 'config.json')));
  }
  // results.md is exactly what the results give; so is the README block.
  const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
  assert.equal(md, resultsMarkdown(r));
  assert.match(md, /\| SimCLR \| 0, 1, 2 \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\] \| (yes|\*\*no\*\*) \|/);
  assert.equal(fs.readFileSync(path.join(out, 'README.md'), 'utf8'), `# notes\n\n${open}\n${readmeBlock(r, 'results.json')}\n${close_}\n`);
  // Figure 1: the mean curves with bands over the three seeds.
  const fig = figure1(r, out);
  assert.equal((fig.data as Array<Record<string, unknown>>).filter((d) => d.fill === 'toself').length, 4);
  assert.match(String((fig.layout!.title as { text: string }).text), /3 seeds \(mean, min–max\).*kNN monitor \(validation\)/);
  assert.ok(fs.existsSync(path.join(out, 'figure1.html')));
  // The committed logs sit where the notebooks look for finished runs.
  const cfg = pretrainConfig('simclr', 'fashion-mnist', 'smoke', { method: 'mixmask', seed: 2 });
  assert.equal(findRun(cfg, [root]), path.join(out, 'simclr-mixmask-block8-val-s2'));

  // A second call finds every run done: no training, identical results.
  const second = node();
  assert.equal(second.status, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /^== /m);
  const r2 = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as Results;
  assert.deepEqual(r2.runs, r.runs);

  // --validate: the same encoders (no pretraining: the checkpoints are done), evaluated on the
  // validation split into their own file; the test results are untouched.
  const before = fs.readFileSync(path.join(out, 'results.json'), 'utf8');
  const val = node('--validate', '--seeds', '1');
  assert.equal(val.status, 0, val.stderr);
  assert.match(val.stderr, /raw-pixel kNN on 300 validation images \(bank 300\): [\d.]+ %/);
  const rv = JSON.parse(fs.readFileSync(path.join(out, 'results-validation.json'), 'utf8')) as Results;
  assert.equal(rv.evalSplit, 'validation');
  assert.equal(rv.runs.length, 2);
  assert.ok(typeof rv.rawPixelKnn === 'number' && rv.rawPixelKnn > 0);
  assert.equal(rv.runs[0].trainSeconds, r.runs[0].trainSeconds, 'pretraining ran again');
  assert.match(fs.readFileSync(path.join(out, 'results-validation.md'), 'utf8'), /kNN baseline \(validation\)/);
  assert.equal(fs.readFileSync(path.join(out, 'results.json'), 'utf8'), before);
  // A run directory trained for other epochs is never extended into a budget variant's run.
  const stretched = node('--validate', '--seeds', '1', '--epochs', '3', '--out', path.join(root, 'variant'));
  assert.notEqual(stretched.status, 0);
  assert.match(stretched.stderr, /simclr-(none|mixmask-block8)-val-s0 holds a run of 2 epochs; the smoke preset with --epochs 3 trains simclr for 3\. A reproduction never extends/);
  // Test numbers are never added to a file of validation numbers.
  const mixed = path.join(root, 'mixed');
  fs.mkdirSync(mixed);
  fs.copyFileSync(path.join(out, 'results-validation.json'), path.join(mixed, 'results.json'));
  const refused = node('--out', mixed);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /results\.json holds mixmask-ts-reproduction\/2 results of profile smoke \(validation split/);

  // --regenerate rewrites the reports from a results file alone.
  fs.writeFileSync(path.join(out, 'results.md'), 'stale');
  const regen = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'scripts', 'reproduce.js'), '--regenerate', path.join(out, 'results.json')], { encoding: 'utf8' });
  assert.equal(regen.status, 0, regen.stderr);
  assert.equal(fs.readFileSync(path.join(out, 'results.md'), 'utf8'), resultsMarkdown(r));
  fs.rmSync(root, { recursive: true, force: true });
});
