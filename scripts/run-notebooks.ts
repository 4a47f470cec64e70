/**
 * `npm run notebooks [-- <filter> ...]`: executes every notebook under notebooks/ (or those
 * whose file name contains a filter) headless through Jupyter's nbconvert with the project's
 * tslab kernel, writes the executed notebooks and HTML renderings into reports/notebooks/,
 * and exits non-zero if any cell of any notebook errors.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KERNEL_NAME, LOCAL_JUPYTER_DIR, PROJECT_ROOT, PYTHON, checkJupyter, writeKernelSpec } from './jupyter';

const NOTEBOOK_DIR = process.env.MIXMASK_NOTEBOOK_DIR ?? path.join(PROJECT_ROOT, 'notebooks');
const OUT_DIR = process.env.MIXMASK_REPORT_DIR ?? path.join(PROJECT_ROOT, 'reports', 'notebooks');
const CELL_TIMEOUT_S = Number(process.env.MIXMASK_CELL_TIMEOUT ?? 3600);

function main(): number {
  const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  checkJupyter();
  writeKernelSpec();
  const all = fs.readdirSync(NOTEBOOK_DIR).filter((f) => f.endsWith('.ipynb')).sort();
  const selected = filters.length ? all.filter((f) => filters.some((flt) => f.includes(flt))) : all;
  if (selected.length === 0) {
    console.error(`no notebook under ${NOTEBOOK_DIR} matches ${filters.join(', ') || '*.ipynb'}`);
    return 1;
  }
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const env = { ...process.env, JUPYTER_PATH: [LOCAL_JUPYTER_DIR, process.env.JUPYTER_PATH].filter(Boolean).join(path.delimiter) };
  const failures: string[] = [];
  for (const file of selected) {
    const name = path.basename(file, '.ipynb');
    const t0 = Date.now();
    process.stdout.write(`▶ ${file} … `);
    const exec = spawnSync(
      PYTHON,
      [
        '-m', 'nbconvert', '--to', 'notebook', '--execute',
        `--ExecutePreprocessor.kernel_name=${KERNEL_NAME}`,
        `--ExecutePreprocessor.timeout=${CELL_TIMEOUT_S}`,
        '--output-dir', OUT_DIR, '--output', name,
        path.join(NOTEBOOK_DIR, file),
      ],
      { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 },
    );
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    if (exec.error) throw new Error(`could not run ${PYTHON} -m nbconvert: ${exec.error.message}`);
    if (exec.status !== 0) {
      console.log(`FAILED after ${seconds} s`);
      console.error(cellError(exec.stderr));
      failures.push(file);
      continue;
    }
    const executed = path.join(OUT_DIR, `${name}.ipynb`);
    const html = spawnSync(PYTHON, ['-m', 'nbconvert', '--to', 'html', '--output-dir', OUT_DIR, executed], { encoding: 'utf8', env });
    if (html.status !== 0) {
      console.log(`executed in ${seconds} s, but the HTML rendering failed`);
      console.error(html.stderr.trim().split('\n').slice(-5).join('\n'));
      failures.push(file);
      continue;
    }
    console.log(`ok in ${seconds} s → ${path.relative(PROJECT_ROOT, executed)}, ${name}.html`);
  }
  const passed = selected.length - failures.length;
  console.log(`notebooks: ${passed} passed, ${failures.length} failed`);
  return failures.length === 0 ? 0 : 1;
}

/** The part of nbconvert's stderr that names the failing cell and its error. */
function cellError(stderr: string): string {
  const i = stderr.indexOf('An error occurred while executing the following cell');
  const text = i >= 0 ? stderr.slice(i) : stderr;
  return text.trim().split('\n').slice(0, 40).join('\n');
}

try {
  process.exit(main());
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
