import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { runComplete } from '../../lib/notebook';
import { findChromium } from '../../lib/plot/browser';
import { KERNEL_NAME, PROJECT_ROOT, writeKernelSpec } from '../../scripts/jupyter';

/**
 * The notebooks as a researcher uses them: Debian's classic Notebook server (jupyter-notebook 6.4)
 * on 127.0.0.1 with a token, driven through the DevTools protocol in Debian's Chromium
 * (puppeteer-core, no downloaded browser). Notebooks are opened from the tree page and run from
 * the menus. The server runs on a temporary copy of notebooks/ (with dist/ and node_modules/
 * linked next to it, as the notebooks import ../dist/lib) and fresh run folders, so that
 * notebook 03 really trains; the repository's notebooks are never touched.
 *
 *   04-mask-patterns  Cell → Run All: no error output, every figure drawn, a slider redraws its
 *                     figure, File → Save writes a notebook under 1 MB (plotly.js is not in it).
 *   03-training-curves  Cell → Run All, Kernel → Interrupt while the first run trains: the cell
 *                     ends with one line naming the checkpoint, the kernel stays; Cell → Run
 *                     Cells resumes that run where it stopped (its log's steps continue).
 */
const SERVER = '/usr/bin/jupyter-notebook';
const DISPLAY_NAME = 'TypeScript (MixMask, tslab)';

function missing(): string | false {
  const why = !fs.existsSync(SERVER) ? `${SERVER} is not installed (apt-get install jupyter-notebook)` : !findChromium() ? 'Chromium is not installed (apt-get install chromium)' : null;
  if (!why) return false;
  if (process.env.CI) throw new Error(`${why}: CI must run the live notebook test`);
  return why;
}
const skip = missing();

interface Live {
  dir: string;
  runs: string;
  port: number;
  token: string;
  server: ChildProcess;
  serverLog: string[];
  browser: Browser;
}
let live: Live | null = null;
const t0 = Date.now();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function api(l: Live, method: string, p: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${l.port}${p}`, { method, headers: { Authorization: `token ${l.token}` } });
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

before(async () => {
  if (skip) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-live-'));
  fs.cpSync(path.join(PROJECT_ROOT, 'notebooks'), path.join(dir, 'notebooks'), { recursive: true, filter: (src) => !src.includes('mixmask-static') && !src.includes('.ipynb_checkpoints') });
  fs.symlinkSync(path.join(PROJECT_ROOT, 'dist'), path.join(dir, 'dist'));
  fs.symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const jupyter = path.join(dir, '.jupyter-test');
  writeKernelSpec(path.join(jupyter, 'data'));
  const runs = path.join(dir, 'runs');
  const port = await freePort();
  const token = crypto.randomBytes(16).toString('hex');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // A Jupyter of its own: this kernelspec, no user config, no user notebook signatures.
    JUPYTER_PATH: path.join(jupyter, 'data'),
    JUPYTER_DATA_DIR: path.join(jupyter, 'data'),
    JUPYTER_CONFIG_DIR: path.join(jupyter, 'config'),
    JUPYTER_RUNTIME_DIR: path.join(jupyter, 'runtime'),
    IPYTHONDIR: path.join(jupyter, 'ipython'),
    MIXMASK_PROFILE: 'smoke',
    MIXMASK_RUNS_ROOT: path.join(runs, 'none'),
    MIXMASK_NOTEBOOK_RUNS: runs,
  };
  delete env.MIXMASK_FIGURE_DIR;
  const args = ['--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0', `--NotebookApp.token=${token}`, `--notebook-dir=${dir}`];
  if (process.getuid?.() === 0) args.push('--allow-root');
  const server = spawn(SERVER, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const serverLog: string[] = [];
  server.stdout!.on('data', (b: Buffer) => serverLog.push(b.toString()));
  server.stderr!.on('data', (b: Buffer) => serverLog.push(b.toString()));
  let browser: Browser | null = null;
  try {
    const l0 = { dir, runs, port, token, server, serverLog, browser: null as unknown as Browser };
    await until('the Notebook server', async () => {
      if (server.exitCode !== null) throw new Error(`jupyter-notebook exited with ${server.exitCode}:\n${serverLog.join('')}`);
      return api(l0, 'GET', '/api/status').then((r) => r.ok, () => false);
    }, 60_000, 200);
    browser = await puppeteer.launch({
      executablePath: findChromium()!,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      userDataDir: path.join(dir, '.chromium'),
      defaultViewport: { width: 1280, height: 1000 },
    });
    live = { ...l0, browser };
  } catch (e) {
    await browser?.close().catch(() => undefined);
    stopServer(server);
    throw e;
  }
});

function stopServer(server: ChildProcess): void {
  if (server.exitCode !== null || server.pid === undefined) return;
  try {
    process.kill(-server.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

after(async () => {
  if (!live) return;
  const l = live;
  live = null;
  await l.browser.close().catch(() => undefined);
  // Kernels run in sessions of their own: shut them down through the server, then the server.
  try {
    const kernels = (await (await api(l, 'GET', '/api/kernels')).json()) as Array<{ id: string }>;
    await Promise.all(kernels.map((k) => api(l, 'DELETE', `/api/kernels/${k.id}`)));
  } catch {
    /* the server is gone already */
  }
  stopServer(l.server);
  const exited = await until('the server to exit', () => l.server.exitCode !== null || l.server.signalCode !== null, 15_000).catch(() => false);
  if (!exited && l.server.pid !== undefined) process.kill(-l.server.pid, 'SIGKILL');
  fs.rmSync(l.dir, { recursive: true, force: true });
  console.log(`live notebook test: ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
});

/** Opens a notebook the way a user does: the tree page, the notebooks folder, then the notebook (a new tab). */
async function openNotebook(l: Live, file: string): Promise<Page> {
  const tree = await l.browser.newPage();
  await tree.goto(`http://127.0.0.1:${l.port}/tree?token=${l.token}`, { waitUntil: 'domcontentloaded' });
  await tree.waitForSelector('#notebook_list a[href$="/tree/notebooks"]', { timeout: 30_000 });
  await tree.click('#notebook_list a[href$="/tree/notebooks"]');
  const link = `#notebook_list a[href$="/notebooks/notebooks/${file}"]`;
  await tree.waitForSelector(link, { timeout: 30_000 });
  const opened = l.browser.waitForTarget((t) => t.url().includes(`/notebooks/notebooks/${file}`), { timeout: 30_000 });
  await tree.click(link);
  const page = (await (await opened).page())!;
  await tree.close();
  page.on('pageerror', (e) => console.error(`page error in ${file}: ${String(e)}`));
  await page.waitForFunction(() => {
    const J = (window as unknown as { Jupyter?: { notebook?: { kernel?: { is_connected?: () => boolean } } } }).Jupyter;
    return J?.notebook?.kernel?.is_connected?.() === true && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
  }, { timeout: 90_000 });
  const kernel = await page.evaluate(() => {
    const J = (window as unknown as { Jupyter: { notebook: { kernel: { name: string } } } }).Jupyter;
    return { name: J.notebook.kernel.name, display: document.querySelector('.kernel_indicator_name')?.textContent ?? '' };
  });
  assert.deepEqual(kernel, { name: KERNEL_NAME, display: DISPLAY_NAME }, `${file} did not start the project's kernel`);
  return page;
}

/** Clicks a menu of the menu bar, then one of its items (ids as in the classic Notebook's page). */
async function menu(page: Page, menuId: string, itemId: string): Promise<void> {
  await page.click(`#${menuId}`);
  await page.waitForSelector(`#${itemId} > a`, { visible: true, timeout: 10_000 });
  await page.click(`#${itemId} > a`);
}

interface CellState {
  index: number;
  type: string;
  prompt: unknown;
  source: string;
  outputs: Array<{ output_type: string; ename?: string; evalue?: string; traceback?: string[]; text?: string | string[] }>;
}

async function cells(page: Page): Promise<CellState[]> {
  return page.evaluate(() => {
    const J = (window as unknown as { Jupyter: { notebook: { get_cells(): Array<{ cell_type: string; input_prompt_number?: unknown; get_text(): string; output_area?: { outputs: unknown[] } }> } } }).Jupyter;
    return J.notebook.get_cells().map((c, index) => ({
      index, type: c.cell_type, prompt: c.input_prompt_number ?? null, source: c.get_text(),
      outputs: JSON.parse(JSON.stringify(c.output_area?.outputs ?? [])) as CellState['outputs'],
    }));
  });
}

/** Waits until no code cell is queued or running and the kernel is idle. */
async function settled(page: Page, timeoutMs: number): Promise<CellState[]> {
  let quietSince = 0;
  let last: CellState[] = [];
  return until('the notebook to finish running', async () => {
    const cs = await cells(page);
    last = cs;
    const idle = await page.evaluate(() => document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null);
    const busy = cs.some((c) => c.type === 'code' && c.prompt === '*');
    if (busy || !idle) {
      quietSince = 0;
      return null;
    }
    if (quietSince === 0) quietSince = Date.now();
    return Date.now() - quietSince > 1000 ? cs : null;
  }, timeoutMs, 200).catch(async (e: Error) => {
    const running = last.filter((c) => c.prompt === '*').map((c) => `cell ${c.index} still running; its output ends with:\n${outputText(c).slice(-1200)}`);
    const ran = last.filter((c) => typeof c.prompt === 'number').pop();
    const kernel = await page.evaluate(() => document.querySelector('#kernel_indicator_icon')?.className ?? '?').catch(() => '?');
    throw new Error(`${e.message} (kernel indicator: ${kernel})\n${running.join('\n')}${ran ? `\nlast cell run (${ran.index}) ends with:\n${outputText(ran).slice(-1200)}` : ''}`);
  });
}

function outputText(c: CellState): string {
  return c.outputs
    .map((o) => (o.output_type === 'error' ? [o.ename, o.evalue, ...(o.traceback ?? [])].join('\n') : Array.isArray(o.text) ? o.text.join('') : o.text ?? ''))
    .join('\n')
    .replace(/\x1b\[[0-9;]*m/g, '');
}

function errorsOf(cs: CellState[]): string[] {
  return cs.flatMap((c) => c.outputs.filter((o) => o.output_type === 'error').map(() => `cell ${c.index}: ${outputText(c).slice(0, 800)}`));
}

/** Figure outputs in the page, and how many of them plotly drew. */
async function figures(page: Page): Promise<{ figures: number; drawn: number; texts: string[] }> {
  return page.evaluate(() => {
    const figs = Array.from(document.querySelectorAll('#notebook-container .output_area .mixmask-plot'));
    const drawn = figs.filter((f) => f.querySelector('.plot-container .main-svg') !== null);
    return { figures: figs.length, drawn: drawn.length, texts: figs.filter((f) => !drawn.includes(f)).map((f) => (f.textContent ?? '').slice(0, 300)) };
  });
}

test('notebook 04 in the live classic Notebook: Run All draws every figure, a slider redraws its figure, the saved notebook is light', { skip }, async () => {
  const l = live!;
  const t = Date.now();
  const file = '04-mask-patterns.ipynb';
  const page = await openNotebook(l, file);
  await menu(page, 'celllink', 'run_all_cells');
  const cs = await settled(page, 180_000);
  assert.deepEqual(errorsOf(cs), [], 'error outputs after Run All');
  const code = cs.filter((c) => c.type === 'code' && c.source.trim() !== '');
  assert.ok(code.every((c) => typeof c.prompt === 'number'), `cells left unrun: ${code.filter((c) => typeof c.prompt !== 'number').map((c) => c.index).join(', ')}`);
  const f = await until('every figure to be drawn', async () => {
    const r = await figures(page);
    return r.figures > 0 && r.drawn === r.figures ? r : null;
  }, 30_000, 250).catch(async (e: Error) => {
    const r = await figures(page);
    throw new Error(`${e.message}: ${r.drawn} of ${r.figures} figures drawn; the others say: ${r.texts.join(' | ')}`);
  });
  assert.ok(f.figures >= 5, `only ${f.figures} figures in notebook 04`);
  // plotly.js came from the file the kernel wrote next to the notebook, through the server.
  assert.ok(fs.readdirSync(path.join(l.dir, 'notebooks', 'mixmask-static')).some((n) => /^plotly-.*\.min\.js$/.test(n)));
  // No mode bar on notebook figures.
  assert.equal(await page.evaluate(() => document.querySelectorAll('#notebook-container .mixmask-plot .modebar-container .modebar').length), 0, 'a plotly mode bar is shown');

  // The first slider figure: a click on its rail at the far left moves it to the first setting.
  const before = await page.evaluate(() => {
    const fig = Array.from(document.querySelectorAll('.mixmask-plot')).find((x) => x.querySelector('.slider-container'))!;
    fig.scrollIntoView();
    fig.id = fig.id || 'slider-figure';
    const visible = Array.from(fig.querySelectorAll('.imagelayer image, g.image image, image')).map((i) => i.getAttribute('href') ?? i.getAttribute('xlink:href') ?? '');
    return { id: fig.id, images: visible.map((h) => h.length + ':' + h.slice(-40)).sort().join(','), label: fig.querySelector('.slider-container .slider-group > text.slider-label')?.textContent ?? '' };
  });
  assert.notEqual(before.images, '', 'the slider figure draws no images');
  const rail = await page.$(`#${before.id} .slider-container .slider-rail-touch-rect`) ?? await page.$(`#${before.id} .slider-container .slider-rail-rect`);
  assert.ok(rail, 'no slider rail in the figure');
  const box = (await rail.boundingBox())!;
  await page.mouse.click(box.x + 3, box.y + box.height / 2);
  const after0 = await until('the figure to redraw after the slider moved', async () => {
    const now = await page.evaluate((id) => {
      const fig = document.getElementById(id)!;
      const visible = Array.from(fig.querySelectorAll('.imagelayer image, g.image image, image')).map((i) => i.getAttribute('href') ?? i.getAttribute('xlink:href') ?? '');
      return { images: visible.map((h) => h.length + ':' + h.slice(-40)).sort().join(','), label: fig.querySelector('.slider-container .slider-group > text.slider-label')?.textContent ?? '' };
    }, before.id);
    return now.images !== before.images ? now : null;
  }, 10_000, 100);
  assert.notEqual(after0.label, before.label, 'the slider label did not change');

  // File → Save: the notebook on disk holds every output but not plotly.js.
  const saved = path.join(l.dir, 'notebooks', file);
  const mtime = fs.statSync(saved).mtimeMs;
  await menu(page, 'filelink', 'save_checkpoint');
  await until('the notebook to be saved', () => fs.statSync(saved).mtimeMs > mtime && page.evaluate(() => !(window as unknown as { Jupyter: { notebook: { dirty: boolean } } }).Jupyter.notebook.dirty), 30_000, 200);
  const text = fs.readFileSync(saved, 'utf8');
  const bytes = Buffer.byteLength(text);
  assert.ok(bytes < 1_000_000, `the saved ${file} weighs ${(bytes / 1e6).toFixed(2)} MB`);
  assert.ok(!text.includes('window.Plotly = Plotly'), 'the plotly.js bundle was saved into the notebook');
  assert.ok((text.match(/class=\\"mixmask-plot\\"/g) ?? []).length >= f.figures, 'figures are missing from the saved notebook');
  console.log(`04 live: ${f.figures} figures drawn, slider '${before.label}' → '${after0.label}', saved ${(bytes / 1e3).toFixed(0)} KB, ${((Date.now() - t) / 1000).toFixed(0)} s`);
  await page.close();
});

/** Steps of every log.jsonl under `root`, by run folder. */
function loggedSteps(root: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const walk = (d: string): void => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'log.jsonl') {
        const steps = fs.readFileSync(p, 'utf8').split('\n').filter((line) => line.trim() !== '').flatMap((line) => {
          try {
            const r = JSON.parse(line) as { type?: string; step?: number };
            return r.type === 'step' && typeof r.step === 'number' ? [r.step] : [];
          } catch {
            return [];
          }
        });
        out.set(path.dirname(p), steps);
      }
    }
  };
  walk(root);
  return out;
}

test('notebook 03 in the live classic Notebook: Kernel → Interrupt stops training with a checkpoint and one line, re-running the cell resumes', { skip }, async () => {
  const l = live!;
  const t = Date.now();
  const page = await openNotebook(l, '03-training-curves.ipynb');
  const train = (await cells(page)).find((c) => c.type === 'code' && c.source.includes('nb.trainOrLoad('));
  assert.ok(train, 'notebook 03 has no training cell');
  await menu(page, 'celllink', 'run_all_cells');
  // Interrupt once the first run has logged a step (the trainer is running, not loading data).
  const started = await until('the first training steps', () => {
    for (const [dir, steps] of loggedSteps(l.runs)) if (steps.length >= 1) return { dir, steps };
    return null;
  }, 120_000, 25);
  await menu(page, 'kernellink', 'int_kernel');
  const cs = await settled(page, 60_000);
  const cell = cs[train.index];
  const text = outputText(cell);
  const m = /(\S.*) stopped at epoch (\d+) \(step (\d+)\) with a checkpoint in (\S+); re-run the cell to resume/.exec(text);
  assert.ok(m, `the interrupted cell does not say where it stopped:\n${text.slice(-1500)}`);
  assert.ok(!/Interrupted asynchronously/.test(text), 'tslab abandoned the cell while training went on');
  assert.ok(!/^\s+at /m.test(text), `a stack trace instead of one line:\n${text.slice(-1500)}`);
  const runDir = m[4];
  const stoppedAt = Number(m[3]);
  assert.equal(runDir, started.dir, 'the message names another run folder');
  assert.ok(fs.existsSync(path.join(runDir, 'checkpoint.safetensors')), `no checkpoint in ${runDir}`);
  assert.ok(!fs.existsSync(path.join(runDir, 'run.lock')), 'the run folder is still locked after the interrupt');
  // Nothing trains after the interrupt: the log stays at the step of the message.
  await new Promise((r) => setTimeout(r, 1500));
  const stepsAtStop = loggedSteps(l.runs).get(runDir)!;
  assert.equal(stepsAtStop[stepsAtStop.length - 1], stoppedAt, 'the log does not end at the step the message names');
  assert.deepEqual(cs.slice(train.index + 1).filter((c) => c.type === 'code' && typeof c.prompt === 'number').map((c) => c.index), [], 'cells after the interrupted one ran');

  // Cell → Run Cells on the training cell (selected by a click): the run resumes after its checkpoint.
  await page.click(`#notebook-container .cell:nth-child(${train.index + 1}) .input_area`);
  await menu(page, 'celllink', 'run_cell');
  const resumed = await until('the interrupted run to go on', () => {
    const steps = loggedSteps(l.runs).get(runDir)!;
    return steps.length > stepsAtStop.length ? steps : null;
  }, 60_000, 50);
  assert.equal(resumed[stepsAtStop.length], stoppedAt + 1, `the re-run did not resume after step ${stoppedAt}: ${resumed.join(',')}`);
  // The run finishes as one sequence of steps; the cell goes on to the next run, which a second
  // interrupt stops the same way (so the test does not wait for all eight runs).
  await until('the resumed run to finish', () => runComplete(runDir), 120_000, 100);
  const steps = loggedSteps(l.runs).get(runDir)!;
  assert.deepEqual(steps, steps.map((_, i) => i + 1), `the resumed run's log is not one sequence of steps: ${steps.join(',')}`);
  const next = await until('the next run to train', () => [...loggedSteps(l.runs)].find(([d, st]) => d !== runDir && st.length >= 1)?.[0], 120_000, 25);
  await menu(page, 'kernellink', 'int_kernel');
  const done = await settled(page, 60_000);
  const again = outputText(done[train.index]);
  const m2 = /stopped at epoch \d+ \(step \d+\) with a checkpoint in (\S+); re-run the cell to resume/.exec(again);
  assert.ok(m2, `the second interrupt did not stop the next run with its line:\n${again.slice(-1500)}`);
  assert.equal(m2[1], next);
  assert.ok(fs.existsSync(path.join(next, 'checkpoint.safetensors')));
  console.log(`03 live: interrupted ${path.basename(runDir)} at step ${stoppedAt}, resumed it to step ${steps.length}, then interrupted ${path.basename(next)}; ${((Date.now() - t) / 1000).toFixed(0)} s`);
  await page.close();
});

// The server's own stdout/stderr, when a test failed, helps more than a timeout.
process.on('exit', (code) => {
  if (code !== 0 && live) console.error(live.serverLog.join('').slice(-4000));
  if (live?.server.pid !== undefined && live.server.exitCode === null) {
    try {
      process.kill(-live.server.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
