/**
 * `npm run notebooks [-- <filter> ...] [--profile smoke|cpu|paper] [--no-browser]`: executes every
 * notebook under notebooks/ (or those whose file name contains a filter) headless through
 * Jupyter's nbconvert with the project's tslab kernel, and writes into reports/notebooks/:
 *
 *   <name>.ipynb, <name>.html   the executed notebook (light: figures load plotly.js from the server)
 *                               and its HTML rendering (plotly.js inlined once, works offline anywhere)
 *   <name>/<figure>.html|.png   every figure shown with mm.plot.showPlot, as a page and a PNG
 *   <name>.png                  a screenshot of the top of the HTML report
 *   report.json                 per notebook: seconds, profile, and the browser check below
 *
 * The browser check opens each HTML report in headless Chromium and fails the notebook unless
 * every plotly figure rendered (an SVG in each figure container) without script errors.
 * The run exits non-zero if any cell of any notebook errors or any check fails.
 * MIXMASK_NOTEBOOK_DIR / MIXMASK_REPORT_DIR override the two folders.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkPage, findChromium, screenshot, type PageCheck } from '../lib/plot/browser';
import { inlinePlotlyBundle } from '../lib/plot/display';
import { mapLimit } from '../lib/util/concurrency';
import { PROFILES } from '../lib/presets';
import { KERNEL_NAME, LOCAL_JUPYTER_DIR, PROJECT_ROOT, PYTHON, checkJupyter, writeKernelSpec } from './jupyter';

const NOTEBOOK_DIR = process.env.MIXMASK_NOTEBOOK_DIR ?? path.join(PROJECT_ROOT, 'notebooks');
const OUT_DIR = process.env.MIXMASK_REPORT_DIR ?? path.join(PROJECT_ROOT, 'reports', 'notebooks');
const CELL_TIMEOUT_S = Number(process.env.MIXMASK_CELL_TIMEOUT ?? 3600);

export const USAGE = `usage: npm run notebooks [-- <name filter> ...] [--profile ${PROFILES.join('|')}] [--no-browser]
  --profile     training budget of every notebook (sets MIXMASK_PROFILE; default: MIXMASK_PROFILE, else smoke)
  --no-browser  skip the figure PNGs, screenshots and the headless-Chromium check`;

interface Args {
  filters: string[];
  profile: string;
  browser: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { filters: [], profile: process.env.MIXMASK_PROFILE || 'smoke', browser: true };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--profile') {
      const p = argv[++i];
      if (p === undefined) throw new Error('--profile needs a value');
      a.profile = p;
    } else if (v.startsWith('--profile=')) a.profile = v.slice('--profile='.length);
    else if (v === '--no-browser') a.browser = false;
    else if (v === '--help' || v === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (v.startsWith('--')) throw new Error(`unknown option ${v}\n${USAGE}`);
    else a.filters.push(v);
  }
  if (!(PROFILES as readonly string[]).includes(a.profile)) throw new Error(`--profile must be one of ${PROFILES.join(', ')}, got '${a.profile}'`);
  return a;
}

interface NotebookReport {
  notebook: string;
  ok: boolean;
  seconds: number;
  error?: string;
  figures?: string[];
  pngs?: string[];
  screenshot?: string;
  check?: PageCheck;
  browserSeconds?: number;
}

/** PNGs of the saved figures, the report screenshot and the render check of one report. */
async function browserPass(chromium: string, name: string, rep: NotebookReport): Promise<string | null> {
  const t0 = Date.now();
  const figDir = path.join(OUT_DIR, name);
  const pages = fs.existsSync(figDir) ? fs.readdirSync(figDir).filter((f) => f.endsWith('.html')).sort() : [];
  rep.figures = pages.map((p) => path.join(name, p));
  const html = path.join(OUT_DIR, `${name}.html`);
  const shot = path.join(OUT_DIR, `${name}.png`);
  const jobs: Array<() => Promise<unknown>> = [
    ...pages.map((p) => () => screenshot(chromium, path.join(figDir, p), path.join(figDir, p.replace(/\.html$/, '.png')))),
    () => screenshot(chromium, html, shot, { width: 1280, height: 1800, budgetMs: 10_000 }),
    async () => {
      rep.check = await checkPage(chromium, html);
    },
  ];
  await mapLimit(jobs, 2, (job) => job());
  rep.pngs = pages.map((p) => path.join(name, p.replace(/\.html$/, '.png')));
  rep.screenshot = `${name}.png`;
  rep.browserSeconds = (Date.now() - t0) / 1000;
  const c = rep.check!;
  const problems: string[] = [];
  if (c.rendered !== c.figures) problems.push(`${c.figures - c.rendered} of ${c.figures} figures did not render (${c.notRendered.join(', ')})`);
  if (c.figures < pages.length) problems.push(`the report shows ${c.figures} figures but the notebook saved ${pages.length}`);
  if (c.errors.length) problems.push(`script errors: ${c.errors.join(' ‖ ')}`);
  return problems.length ? problems.join('; ') : null;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  checkJupyter();
  writeKernelSpec();
  const chromium = args.browser ? findChromium() : null;
  if (args.browser && !chromium) {
    const msg = 'headless Chromium not found (apt-get install chromium, or set MIXMASK_CHROMIUM)';
    if (process.env.CI) throw new Error(`${msg}: CI needs it for the browser check`);
    console.warn(`warning: ${msg}; skipping figure PNGs and the browser check`);
  }
  const all = fs.readdirSync(NOTEBOOK_DIR).filter((f) => f.endsWith('.ipynb')).sort();
  const selected = args.filters.length ? all.filter((f) => args.filters.some((flt) => f.includes(flt))) : all;
  if (selected.length === 0) {
    console.error(`no notebook under ${NOTEBOOK_DIR} matches ${args.filters.join(', ') || '*.ipynb'}`);
    return 1;
  }
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const baseEnv = {
    ...process.env,
    MIXMASK_PROFILE: args.profile,
    JUPYTER_PATH: [LOCAL_JUPYTER_DIR, process.env.JUPYTER_PATH].filter(Boolean).join(path.delimiter),
  };
  console.log(`profile ${args.profile}; reports in ${path.relative(PROJECT_ROOT, OUT_DIR) || OUT_DIR}`);
  const reports: NotebookReport[] = [];
  for (const file of selected) {
    const name = path.basename(file, '.ipynb');
    const figDir = path.join(OUT_DIR, name);
    fs.rmSync(figDir, { recursive: true, force: true });
    const rep: NotebookReport = { notebook: file, ok: false, seconds: 0 };
    reports.push(rep);
    const t0 = Date.now();
    process.stdout.write(`▶ ${file} … `);
    const env = { ...baseEnv, MIXMASK_FIGURE_DIR: figDir };
    const executed = path.join(OUT_DIR, `${name}.ipynb`);
    const exec = spawnSync(PYTHON, ['-c', EXECUTE_PY, path.join(NOTEBOOK_DIR, file), executed, KERNEL_NAME, String(CELL_TIMEOUT_S)], {
      encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024,
    });
    rep.seconds = (Date.now() - t0) / 1000;
    const seconds = rep.seconds.toFixed(1);
    if (exec.error) throw new Error(`could not run ${PYTHON}: ${exec.error.message}`);
    if (exec.status !== 0) {
      console.log(`FAILED after ${seconds} s`);
      rep.error = exec.stderr.trim().split('\n').slice(-60).join('\n');
      console.error(rep.error);
      continue;
    }
    const html = spawnSync(PYTHON, ['-m', 'nbconvert', '--to', 'html', '--output-dir', OUT_DIR, executed], { encoding: 'utf8', env });
    if (html.status !== 0) {
      console.log(`executed in ${seconds} s, but the HTML rendering FAILED`);
      rep.error = html.stderr.trim().split('\n').slice(-5).join('\n');
      console.error(rep.error);
      continue;
    }
    // The notebook's figures load plotly.js from the Jupyter server; the report carries it inline.
    const htmlFile = path.join(OUT_DIR, `${name}.html`);
    fs.writeFileSync(htmlFile, inlinePlotlyBundle(fs.readFileSync(htmlFile, 'utf8')));
    let browserNote = '';
    if (chromium) {
      let problem: string | null;
      try {
        problem = await browserPass(chromium, name, rep);
      } catch (e) {
        problem = (e as Error).message;
      }
      if (problem) {
        console.log(`executed in ${seconds} s, but the browser check FAILED`);
        rep.error = problem;
        console.error(problem);
        continue;
      }
      const c = rep.check!;
      browserNote = `; browser: ${c.rendered}/${c.figures} figures rendered, ${rep.pngs!.length} PNGs (${rep.browserSeconds!.toFixed(1)} s)`;
    }
    rep.ok = true;
    console.log(`ok in ${seconds} s → ${path.relative(PROJECT_ROOT, executed)}, ${name}.html${browserNote}`);
  }
  const failures = reports.filter((r) => !r.ok);
  fs.writeFileSync(
    path.join(OUT_DIR, 'report.json'),
    JSON.stringify({ profile: args.profile, browserCheck: chromium !== null, finishedAt: new Date().toISOString(), notebooks: reports }, null, 2) + '\n',
  );
  const total = reports.reduce((s, r) => s + r.seconds, 0);
  console.log(`notebooks: ${reports.length - failures.length} passed, ${failures.length} failed (${total.toFixed(0)} s of execution)`);
  return failures.length === 0 ? 0 : 1;
}

/**
 * Executes a notebook with nbclient (what nbconvert --execute uses) and always writes the result,
 * also when a cell fails, so that the failing cell's outputs can be read in the report. On failure
 * it prints the cell and everything it wrote: tslab reports compile errors on stderr and
 * runtime errors with an empty error name, which nbconvert's own message loses.
 */
const EXECUTE_PY = `
import os, re, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
src, out, kernel, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, resources={'metadata': {'path': os.path.dirname(os.path.abspath(src))}})
failed = None
try:
    client.execute()
except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
    failed = e
finally:
    nbformat.write(nb, out)
if failed is not None:
    ran = [i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and c.get('execution_count') is not None]
    i = ran[-1] if ran else 0
    cell = nb.cells[i]
    text = []
    for o in cell.get('outputs', []):
        if o.output_type == 'stream':
            text.append(o.text)
        elif o.output_type == 'error':
            text.append((o.ename or 'Error') + ': ' + (o.evalue or '') + '\\n' + '\\n'.join(o.traceback or []))
    body = re.sub(r'\\x1b\\[[0-9;]*m', '', ''.join(text)).strip()
    sys.stderr.write('An error occurred while executing cell %d:\\n------------------\\n%s\\n------------------\\n%s\\n%s\\n' % (
        i + 1, cell.source, body[-4000:], type(failed).__name__ + ': ' + str(failed).strip().splitlines()[-1] if str(failed).strip() else type(failed).__name__))
    sys.exit(1)
`;

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error((e as Error).message);
    process.exit(1);
  },
);
