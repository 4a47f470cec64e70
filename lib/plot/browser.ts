import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Headless Chromium for the reports: screenshots of pages (figure PNGs, one per notebook) and a
 * check that every plotly figure of a page really rendered without script errors. Plain
 * command-line Chromium (`--screenshot`, `--dump-dom` after a virtual-time budget), no
 * DevTools protocol client: the check script is injected into a copy of the page and writes
 * its findings into the DOM that `--dump-dom` prints.
 */
export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** Flags that work in containers and offline machines (no sandbox, no GPU, no network chatter). */
export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--mute-audio',
];

/** `MIXMASK_CHROMIUM` if set, else the first installed candidate, else null. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.MIXMASK_CHROMIUM) return fs.existsSync(env.MIXMASK_CHROMIUM) ? env.MIXMASK_CHROMIUM : null;
  return CHROMIUM_CANDIDATES.find((c) => fs.existsSync(c)) ?? null;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs Chromium with a fresh profile directory (removed afterwards) and a time limit. */
async function runChromium(chromium: string, args: string[], timeoutMs: number): Promise<RunResult> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-chromium-'));
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(chromium, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

function fileUrl(file: string): string {
  return 'file://' + path.resolve(file).split(path.sep).map(encodeURIComponent).join('/');
}

/** The pixel size a figure page asks for (its <meta name="mixmask-size">), or null. */
export function pageSize(htmlFile: string): { width: number; height: number } | null {
  const fd = fs.openSync(htmlFile, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const m = /<meta name="mixmask-size" content="(\d+)x(\d+)">/.exec(buf.subarray(0, n).toString('utf8'));
    return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
  } finally {
    fs.closeSync(fd);
  }
}

export interface ScreenshotOptions {
  width?: number;
  height?: number;
  /** Virtual milliseconds the page may run before the shot (default 5000). */
  budgetMs?: number;
  timeoutMs?: number;
}

/** Renders a page to PNG at the given window size (default: the page's own, else 1280×1600). */
export async function screenshot(chromium: string, htmlFile: string, pngFile: string, opts: ScreenshotOptions = {}): Promise<void> {
  const size = pageSize(htmlFile);
  const width = opts.width ?? size?.width ?? 1280;
  const height = opts.height ?? size?.height ?? 1600;
  fs.mkdirSync(path.dirname(path.resolve(pngFile)), { recursive: true });
  fs.rmSync(pngFile, { force: true });
  const res = await runChromium(
    chromium,
    [`--screenshot=${path.resolve(pngFile)}`, `--window-size=${width},${height}`, `--virtual-time-budget=${opts.budgetMs ?? 5000}`, fileUrl(htmlFile)],
    opts.timeoutMs ?? 120_000,
  );
  if (!fs.existsSync(pngFile)) {
    throw new Error(`chromium wrote no screenshot of ${htmlFile} (exit ${res.code}): ${res.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

export interface PageCheck {
  /** Figure containers (`.mixmask-plot`) on the page. */
  figures: number;
  /** Of those, how many hold a plotly SVG (`.main-svg`): the figure was drawn. */
  rendered: number;
  /** Ids of figure containers that stayed empty. */
  notRendered: string[];
  /** Uncaught exceptions, unhandled rejections and console.error calls. */
  errors: string[];
  /** Scripts, styles or images that failed to load (reported, not fatal: e.g. MathJax absent). */
  resourceErrors: string[];
  /** Whether window.Plotly was defined. */
  plotly: boolean;
  /** figures all rendered and no errors. */
  ok: boolean;
}

const RESULT_ID = 'mixmask-browser-check';

/** Runs first on the page: records errors, then (after load and a settling delay) what rendered. */
function checkScript(settleMs: number): string {
  return `<script>(function(){var errs=[],res=[];
window.addEventListener('error',function(e){var t=e.target;
if(t&&t!==window&&(t.src||t.href)){res.push(String(t.src||t.href).slice(0,200));}
else{errs.push('uncaught: '+String(e.message||e.error||e).slice(0,500));}},true);
window.addEventListener('unhandledrejection',function(e){errs.push('unhandled rejection: '+String(e.reason).slice(0,500));});
var ce=console.error;console.error=function(){errs.push('console.error: '+Array.prototype.map.call(arguments,String).join(' ').slice(0,500));return ce.apply(console,arguments);};
window.addEventListener('load',function(){setTimeout(function(){
var figs=document.querySelectorAll('.mixmask-plot'),ok=0,bad=[];
for(var i=0;i<figs.length;i++){if(figs[i].querySelector('.main-svg')){ok++;}else{bad.push(figs[i].id);}}
var pre=document.createElement('pre');pre.id='${RESULT_ID}';pre.style.display='none';
pre.textContent=encodeURIComponent(JSON.stringify({figures:figs.length,rendered:ok,notRendered:bad,errors:errs,resourceErrors:res,plotly:!!window.Plotly}));
document.body.appendChild(pre);},${settleMs});});})();</script>`;
}

/**
 * Opens a copy of `htmlFile` (next to it, so relative resources resolve; removed afterwards)
 * with the check script injected first in <head>, lets it run for `budgetMs` of virtual time
 * and reads the findings back from the dumped DOM.
 */
export async function checkPage(chromium: string, htmlFile: string, opts: { budgetMs?: number; settleMs?: number; timeoutMs?: number } = {}): Promise<PageCheck> {
  const html = fs.readFileSync(htmlFile, 'utf8');
  const script = checkScript(opts.settleMs ?? 2000);
  const head = /<head[^>]*>/i.exec(html);
  const injected = head ? html.slice(0, head.index + head[0].length) + script + html.slice(head.index + head[0].length) : script + html;
  const copy = path.join(path.dirname(htmlFile), `.${path.basename(htmlFile, '.html')}.check-${process.pid}.html`);
  fs.writeFileSync(copy, injected);
  try {
    const res = await runChromium(chromium, ['--dump-dom', `--virtual-time-budget=${opts.budgetMs ?? 15_000}`, fileUrl(copy)], opts.timeoutMs ?? 180_000);
    const m = new RegExp(`<pre id="${RESULT_ID}"[^>]*>([^<]*)</pre>`).exec(res.stdout);
    if (!m) {
      throw new Error(`browser check of ${htmlFile}: the page never finished loading in Chromium (exit ${res.code}; ${res.stderr.trim().split('\n').slice(-3).join(' | ')})`);
    }
    const r = JSON.parse(decodeURIComponent(m[1])) as Omit<PageCheck, 'ok'>;
    return { ...r, ok: r.rendered === r.figures && r.errors.length === 0 };
  } finally {
    fs.rmSync(copy, { force: true });
  }
}

