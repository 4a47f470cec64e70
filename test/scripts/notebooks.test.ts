import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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

test('every notebook executes headless without cell errors; 00-environment shows the backend report and a plotly figure', { skip: jupyterMissing() }, () => {
  const reportDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-reports-'));
  const run = runNotebooks([], { MIXMASK_REPORT_DIR: reportDir });
  assert.equal(run.status, 0, `notebooks failed:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /notebooks: \d+ passed, 0 failed/);

  const outputs = outputsOf(path.join(reportDir, '00-environment.ipynb'));
  assert.ok(outputs.some((o) => /backend: \S+/.test(o) && /tfjs-node-gpu/.test(o)), 'no backend report in the outputs');
  assert.ok(outputs.some((o) => /window\.Plotly = Plotly/.test(o)), 'the plotly.js bundle is not inlined');
  assert.ok(outputs.some((o) => /class="mixmask-plot"/.test(o) && /Plotly\.newPlot/.test(o)), 'no plotly figure in the outputs');
  assert.ok(fs.existsSync(path.join(reportDir, '00-environment.html')));
});

test('a notebook whose cell throws makes the run fail and names the cell', { skip: jupyterMissing() }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-notebooks-'));
  const nb = {
    cells: [{ cell_type: 'code', execution_count: null, id: 'c0', metadata: {}, outputs: [], source: ["throw new Error('deliberate failure');"] }],
    metadata: { kernelspec: { name: 'mixmask-ts', display_name: 'TypeScript (MixMask, tslab)', language: 'typescript' } },
    nbformat: 4,
    nbformat_minor: 5,
  };
  fs.writeFileSync(path.join(dir, 'broken.ipynb'), JSON.stringify(nb));
  const run = runNotebooks([], { MIXMASK_NOTEBOOK_DIR: dir, MIXMASK_REPORT_DIR: path.join(dir, 'out') });
  assert.equal(run.status, 1);
  assert.match(run.stdout, /broken\.ipynb … FAILED/);
  assert.match(run.stdout, /notebooks: 0 passed, 1 failed/);
  assert.match(run.stderr, /deliberate failure/);
});
