import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { tslabDisplay } from '../util/tslab';

/**
 * Plotly figures inline in tslab notebooks and as standalone HTML files, fully offline: the
 * plotly.js bundle (plotly.js-dist-min, the minified plotly.js-dist) is inlined, never
 * fetched from a CDN. In a notebook the bundle is sent once per kernel session (by
 * `setupNotebook()` or, failing that, by the first figure); later figures reuse window.Plotly.
 */
export interface PlotlyFigure {
  data: Array<Record<string, unknown>>;
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

let bundleCache: string | null = null;
let bundleSentToKernel = false;
let figureCounter = 0;

/** plotly.js's version, read from the installed package. */
export function plotlyVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(require.resolve('plotly.js-dist-min/package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** A <script> that defines window.Plotly from the bundled plotly.js, also on pages with require.js. */
export function plotlyBundleScript(): string {
  if (bundleCache === null) {
    const src = fs.readFileSync(require.resolve('plotly.js-dist-min'), 'utf8').replace(/<\/script/gi, '<\\/script');
    // Hiding define/module/exports makes the UMD wrapper assign self.Plotly even where
    // require.js is loaded (classic Jupyter, nbconvert's classic template).
    bundleCache = `<script type="text/javascript">(function(){var define, module, exports;\n${src}\n})();</script>`;
  }
  return bundleCache;
}

/** HTML for one figure: a div and a script that draws it once Plotly is available. */
export function figureHtml(fig: PlotlyFigure, opts: { includeBundle?: boolean; id?: string } = {}): string {
  const id = opts.id ?? `mixmask-plot-${process.pid}-${Date.now().toString(36)}-${figureCounter++}`;
  const height = typeof fig.layout?.height === 'number' ? `${fig.layout.height}px` : '450px';
  const payload = JSON.stringify({ data: fig.data, layout: fig.layout ?? {}, config: { responsive: true, ...fig.config } })
    .replace(/</g, '\\u003c');
  const draw = `<div id="${id}" class="mixmask-plot" style="width:100%;height:${height}"></div>
<script type="text/javascript">(function(){var f=${payload};var tries=0;
function draw(){var el=document.getElementById(${JSON.stringify(id)});if(!el){return;}
if(window.Plotly){window.Plotly.newPlot(el,f.data,f.layout,f.config);}
else if(tries++<200){setTimeout(draw,50);}
else{el.textContent='plotly.js is not loaded on this page: run the notebook from its first cell.';}}
draw();})();</script>`;
  return (opts.includeBundle ? plotlyBundleScript() : '') + draw;
}

/** Name of the shared plotly.js file that figure pages written with `bundle: 'file'` load. */
export const PLOTLY_FILE = 'plotly.min.js';

/**
 * A complete offline HTML page with one or more figures. `bundle: 'inline'` (default) makes it
 * self-contained; `'file'` loads ./plotly.min.js instead (see writePlotlyFile), so that a folder
 * of many figures holds the 4.6 MB bundle once.
 */
export function standaloneHtml(figs: PlotlyFigure[], title = 'MixMask figure', opts: { bundle?: 'inline' | 'file' } = {}): string {
  const body = figs.map((f) => figureHtml(f)).join('\n');
  const bundle = opts.bundle === 'file' ? `<script type="text/javascript" src="${PLOTLY_FILE}"></script>` : plotlyBundleScript();
  // The intended pixel size, for whoever renders the page to PNG (headless Chromium's window).
  const size = `${figureWidth(figs)}x${figs.reduce((h, f) => h + figureHeight(f) + 20, 20)}`;
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta name="mixmask-size" content="${size}"><title>${escapeHtml(title)}</title>${bundle}</head>\n<body style="margin:8px">\n${body}\n</body></html>\n`;
}

/** Writes a standalone HTML page atomically (temp file + rename). */
export function writeFigureHtml(file: string, figs: PlotlyFigure | PlotlyFigure[], title?: string, opts: { bundle?: 'inline' | 'file' } = {}): void {
  const list = Array.isArray(figs) ? figs : [figs];
  if (opts.bundle === 'file') writePlotlyFile(path.dirname(file));
  writeFileAtomic(file, standaloneHtml(list, title, opts));
}

/** Writes <dir>/plotly.min.js (the bundle, wrapped as in plotlyBundleScript) unless present. */
export function writePlotlyFile(dir: string): string {
  const file = path.join(dir, PLOTLY_FILE);
  if (!fs.existsSync(file)) {
    // The same wrapper as plotlyBundleScript (no <script> escaping needed in a .js file).
    const src = fs.readFileSync(require.resolve('plotly.js-dist-min'), 'utf8');
    writeFileAtomic(file, `(function(){var define, module, exports;\n${src}\n})();\n`);
  }
  return file;
}

function figureHeight(fig: PlotlyFigure): number {
  return typeof fig.layout?.height === 'number' ? fig.layout.height : 450;
}

function figureWidth(figs: PlotlyFigure[]): number {
  const widths = figs.map((f) => (typeof f.layout?.width === 'number' ? f.layout.width : 1000));
  return Math.max(...widths) + 16;
}

/**
 * Where showPlot saves figures as well as displaying them: `MIXMASK_FIGURE_DIR`, which the
 * headless runner (`npm run notebooks`) sets to reports/notebooks/<notebook>/; null otherwise.
 */
export function figureDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env.MIXMASK_FIGURE_DIR;
  return dir && dir.trim() !== '' ? dir : null;
}

/** Sends raw HTML to the notebook output; returns false outside a notebook. */
export function displayHtml(html: string): boolean {
  const write = tslabDisplay();
  if (!write) return false;
  write({ data: { 'text/html': html }, metadata: {}, transient: {} }, false);
  return true;
}

/** Loads plotly.js into the notebook page. Call once at the top of a notebook. */
export function setupNotebook(): void {
  if (displayHtml(`${plotlyBundleScript()}<div style="display:none">plotly.js ${plotlyVersion()} loaded</div>`)) {
    bundleSentToKernel = true;
  }
}

/** Names already used by showPlot in this process (the kernel), so that saved files never collide. */
const savedNames = new Set<string>();
let savedCounter = 0;

export interface ShowPlotOptions {
  /** Also write the figure to this file as a standalone (self-contained) page. */
  htmlFile?: string;
  /**
   * File name (without extension) when figures are saved (see figureDir); default figure-NN.
   * Characters other than letters, digits, '-', '_' and '.' become '-'.
   */
  name?: string;
}

/**
 * Shows a figure inline in tslab. In a headless run (figureDir() set) it is also written to
 * <figureDir>/<name>.html, loading the folder's shared plotly.min.js; the runner renders those
 * pages to PNG. Outside a notebook it displays nothing; `htmlFile` writes a standalone page
 * anywhere. Returns nothing, so that a cell ending in showPlot prints nothing (the saved path is
 * lastSavedFigure()).
 */
export function showPlot(fig: PlotlyFigure, opts: ShowPlotOptions = {}): void {
  if (opts.htmlFile) writeFigureHtml(opts.htmlFile, fig);
  let saved: string | null = null;
  const dir = figureDir();
  if (dir) {
    const title = (fig.layout?.title as { text?: string } | undefined)?.text;
    saved = path.join(dir, `${uniqueName(opts.name)}.html`);
    // These pages are also rendered to PNG: no modebar (headless Chromium shows it on every shot).
    const page = { ...fig, config: { ...fig.config, displayModeBar: false } };
    writeFigureHtml(saved, page, title ? stripTags(title) : undefined, { bundle: 'file' });
  }
  lastSaved = saved;
  if (displayHtml(figureHtml(fig, { includeBundle: !bundleSentToKernel }))) bundleSentToKernel = true;
}

let lastSaved: string | null = null;

/** The page the last showPlot call saved (null when figures are not being saved). */
export function lastSavedFigure(): string | null {
  return lastSaved;
}

function uniqueName(name: string | undefined): string {
  savedCounter++;
  let base = (name ?? `figure-${String(savedCounter).padStart(2, '0')}`).replace(/[^A-Za-z0-9._-]+/g, '-');
  if (savedNames.has(base)) {
    let k = 2;
    while (savedNames.has(`${base}-${k}`)) k++;
    base = `${base}-${k}`;
  }
  savedNames.add(base);
  return base;
}

function stripTags(s: string): string {
  return s.replace(/<[^>]*>/g, '');
}

/** Shows HTML (e.g. a table from lib/plot/tables) inline; a no-op outside a notebook. */
export function showHtml(html: string): void {
  displayHtml(html);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
