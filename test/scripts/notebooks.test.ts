import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { byProfile, experimentKey, findRun, notebookProfile, runComplete, runDirFor } from '../../lib/notebook';
import { findChromium } from '../../lib/plot/browser';
import { pretrainConfig } from '../../lib/presets';
import { PROJECT_ROOT, checkJupyter } from '../../scripts/jupyter';

const RUNNER = path.join(PROJECT_ROOT, 'dist', 'scripts', 'run-notebooks.js');

/** Jupyter is a system dependency: CI installs it, so there its absence is a failure. */
function jupyterMissing(): string | false {
  try {
    checkJupyter();
    return false;
  } catch (e) {
    if (process.env.CI) throw e;
    return (e as Error).message;
  }
}

function runNotebooks(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [RUNNER, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30 * 60_000 });
}

function outputsOf(notebookFile: string): string[] {
  const nb = JSON.parse(fs.readFileSync(notebookFile, 'utf8')) as {
    cells: Array<{ cell_type: string; outputs?: Array<{ text?: string | string[]; data?: Record<string, string | string[]> }> }>;
  };
  const join = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join('') : v ?? '');
  return nb.cells.flatMap((c) => (c.outputs ?? []).map((o) => join(o.text) + Object.values(o.data ?? {}).map(join).join('')));
}

interface Report {
  profile: string;
  browserCheck: boolean;
  notebooks: Array<{
    notebook: string; ok: boolean; seconds: number; figures?: string[]; pngs?: string[]; screenshot?: string;
    check?: { figures: number; rendered: number; errors: string[]; ok: boolean };
  }>;
}

const EXPECTED_FIGURES: Record<string, string[]> = {
  '01-base-models-and-datasets': ['parameters', 'mixmask-views', 'samples-fashion-mnist'],
  '02-training-configurations': ['table1-runs'],
  '03-training-curves': ['figure1', 'final-knn', 'embedding-std'],
  '05-evaluation': ['evaluation'],
  '06-ablations': ['ablations-knn', 'ablations-curves'],
};

test('every notebook runs headless at the smoke profile; every figure renders in Chromium, with a PNG each and a screenshot per notebook', { skip: jupyterMissing() }, () => {
  const reportDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-reports-'));
  // Fresh run folders, so that the notebooks train (not load) their runs.
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-nb-runs-'));
  const t0 = Date.now();
  const run = runNotebooks(['--profile', 'smoke'], { MIXMASK_REPORT_DIR: reportDir, MIXMASK_NOTEBOOK_RUNS: runs, MIXMASK_RUNS_ROOT: path.join(runs, 'none') });
  assert.equal(run.status, 0, `notebooks failed:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /notebooks: \d+ passed, 0 failed/);
  console.log(`notebooks at smoke: ${((Date.now() - t0) / 1000).toFixed(0)} s\n${run.stdout}`);

  const outputs = outputsOf(path.join(reportDir, '00-environment.ipynb'));
  assert.ok(outputs.some((o) => /backend: \S+/.test(o) && /tfjs-node-gpu/.test(o)), 'no backend report in the outputs');
  // Saved notebooks stay light: figures load plotly.js from the server; the HTML report carries it.
  assert.ok(!outputs.some((o) => /window\.Plotly = Plotly/.test(o)), 'the plotly.js bundle is in the saved outputs');
  assert.ok(outputs.some((o) => /data-mixmask-plotly-loader=/.test(o)), 'no plotly.js loader in the outputs');
  assert.match(fs.readFileSync(path.join(reportDir, '00-environment.html'), 'utf8'), /window\.Plotly = Plotly/, 'the HTML report does not carry plotly.js');
  assert.ok(outputs.some((o) => /class="mixmask-plot"/.test(o) && /Plotly\.newPlot/.test(o)), 'no plotly figure in the outputs');

  const report = JSON.parse(fs.readFileSync(path.join(reportDir, 'report.json'), 'utf8')) as Report;
  assert.equal(report.profile, 'smoke');
  const names = fs.readdirSync(path.join(PROJECT_ROOT, 'notebooks')).filter((f) => f.endsWith('.ipynb'));
  assert.deepEqual(report.notebooks.map((n) => n.notebook).sort(), names.sort());
  for (const n of report.notebooks) {
    const name = path.basename(n.notebook, '.ipynb');
    assert.ok(n.ok, `${n.notebook} failed`);
    assert.ok(fs.existsSync(path.join(reportDir, `${name}.html`)), `${name}.html missing`);
    const bytes = fs.statSync(path.join(reportDir, `${name}.ipynb`)).size;
    assert.ok(bytes < 1_000_000, `${name}.ipynb weighs ${(bytes / 1e6).toFixed(2)} MB after the run (limit 1 MB)`);
    for (const fig of EXPECTED_FIGURES[name] ?? []) assert.ok(fs.existsSync(path.join(reportDir, name, `${fig}.html`)), `${name}: figure ${fig} was not saved`);
    if (!report.browserCheck) continue;
    const c = n.check!;
    assert.ok(c.figures >= 1 && c.rendered === c.figures, `${name}: ${c.rendered} of ${c.figures} figures rendered`);
    assert.deepEqual(c.errors, [], `${name}: script errors in the report`);
    assert.equal(n.pngs!.length, n.figures!.length);
    for (const png of [...n.pngs!, n.screenshot!]) {
      const buf = fs.readFileSync(path.join(reportDir, png));
      assert.equal(buf.subarray(1, 4).toString('ascii'), 'PNG', `${png} is not a PNG`);
      assert.ok(buf.length > 5000, `${png} is suspiciously small (blank?)`);
    }
  }
  if (process.env.CI) assert.ok(report.browserCheck, 'CI must run the browser check (install chromium)');

  // 03 trained its eight runs into the fresh folder and drew Figure 1 from their logs.
  const fig1 = fs.readFileSync(path.join(reportDir, '03-training-curves', 'figure1.html'), 'utf8');
  assert.match(fig1, /Figure 1/);
  assert.equal(fs.readdirSync(path.join(runs, 'fashion-mnist-smoke')).filter((d) => /^(moco-v2|simclr|byol|simsiam)-(none|mixmask)/.test(d)).length >= 8, true);
});

test('a notebook whose cell throws, or does not compile, makes the run fail and names the cell and the error', { skip: jupyterMissing() }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-notebooks-'));
  const nb = (source: string) => ({
    cells: [{ cell_type: 'code', execution_count: null, id: 'c0', metadata: {}, outputs: [], source: [source] }],
    metadata: { kernelspec: { name: 'mixmask-ts', display_name: 'TypeScript (MixMask, tslab)', language: 'typescript' } },
    nbformat: 4,
    nbformat_minor: 5,
  });
  fs.writeFileSync(path.join(dir, 'broken.ipynb'), JSON.stringify(nb("throw new Error('deliberate failure');")));
  fs.writeFileSync(path.join(dir, 'typo.ipynb'), JSON.stringify(nb("const n: number = 'text';")));
  const run = runNotebooks(['--no-browser'], { MIXMASK_NOTEBOOK_DIR: dir, MIXMASK_REPORT_DIR: path.join(dir, 'out') });
  assert.equal(run.status, 1);
  assert.match(run.stdout, /broken\.ipynb … FAILED/);
  assert.match(run.stdout, /typo\.ipynb … FAILED/);
  assert.match(run.stdout, /notebooks: 0 passed, 2 failed/);
  assert.match(run.stderr, /deliberate failure/);
  assert.match(run.stderr, /not assignable to type 'number'/);
  // The executed notebook is kept, with the failing cell's output.
  assert.ok(fs.existsSync(path.join(dir, 'out', 'broken.ipynb')));
});

test('the runner rejects an unknown profile before starting anything', () => {
  const run = runNotebooks(['--profile', 'huge']);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /--profile must be one of paper, cpu, smoke/);
});

test('the profile comes from MIXMASK_PROFILE, smoke when unset', () => {
  assert.equal(notebookProfile({}), 'smoke');
  assert.equal(notebookProfile({ MIXMASK_PROFILE: 'cpu' }), 'cpu');
  assert.throws(() => notebookProfile({ MIXMASK_PROFILE: 'fast' }), /MIXMASK_PROFILE must be one of/);
  assert.equal(byProfile('paper', { smoke: 1, cpu: 2, paper: 3 }), 3);
});

test('runs are found only when finished and of exactly the same experiment; a different one gets its own folder', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-runroot-'));
  const a = pretrainConfig('moco-v2', 'synthetic', 'smoke', { method: 'mixmask' });
  const b = pretrainConfig('moco-v2', 'synthetic', 'smoke', { method: 'mixmask', ratio: 0.25 });
  assert.notEqual(experimentKey(a), experimentKey(b));
  assert.equal(experimentKey(a), experimentKey(JSON.parse(JSON.stringify(a))));
  const dirA = runDirFor(a, root);
  assert.equal(findRun(a, [root]), null);
  fs.mkdirSync(dirA, { recursive: true });
  fs.writeFileSync(path.join(dirA, 'config.json'), JSON.stringify(a));
  fs.writeFileSync(path.join(dirA, 'log.jsonl'), JSON.stringify({ type: 'epoch', epoch: 0, step: 4 }) + '\n');
  assert.equal(runComplete(dirA), false, 'one epoch of two is not finished');
  fs.appendFileSync(path.join(dirA, 'log.jsonl'), JSON.stringify({ type: 'epoch', epoch: 1, step: 8 }) + '\n');
  assert.equal(findRun(a, [root]), dirA);
  // Same folder name (ratio is not in it), other experiment: not found, and a hashed folder of its own.
  assert.equal(findRun(b, [root]), null);
  assert.match(runDirFor(b, root), new RegExp(`^${dirA.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}~[0-9a-f]{8}$`));
});

test('chromium is found where the CI installs it', { skip: process.env.CI ? false : 'only checked in CI' }, () => {
  assert.ok(findChromium(), 'chromium missing: add it to scripts/apt-packages.txt');
});
