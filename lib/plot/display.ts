import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { inNotebook, tslabDisplay } from '../util/tslab';

/**
 * Plotly figures inline in tslab notebooks and as standalone HTML files, fully offline: the
 * plotly.js bundle (plotly.js-dist-min, the minified plotly.js-dist) is never fetched from a CDN.
 *
 * In a notebook the 4.6 MB bundle stays out of the saved outputs: the kernel writes it once to
 * `mixmask-static/plotly-<version>.min.js` next to the notebook (a folder that git-ignores
 * itself), and each figure output carries a small loader that fetches it from the Jupyter server
 * (`<base>/files/<notebook folder>/mixmask-static/...`, classic Notebook and JupyterLab) or,
 * failing that, relative to the page; a figure whose bundle cannot be loaded says so in place of
 * the plot. HTML exports get the bundle inlined by `inlinePlotlyBundle` (the headless runner does
 * this), standalone figure pages inline it or load a shared file.
 */
export interface PlotlyFigure {
  data: Array<Record<string, unknown>>;
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

let bundleCache: string | null = null;
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

/** The folder, next to a notebook (the kernel's working directory), that holds the bundle for the live page. */
export const NOTEBOOK_STATIC_DIR = 'mixmask-static';

/** The bundle's file name under NOTEBOOK_STATIC_DIR: versioned, so a browser never runs a stale cached copy. */
export function notebookPlotlyFile(): string {
  return `plotly-${plotlyVersion()}.min.js`;
}

/**
 * Writes <dir>/mixmask-static/plotly-<version>.min.js (and a .gitignore of `*`, so the folder
 * never shows up in a commit) unless present; returns the file. `dir` defaults to the kernel's
 * working directory, which Jupyter sets to the notebook's folder.
 */
export function writeNotebookPlotlyFile(dir: string = process.cwd()): string {
  const staticDir = path.join(dir, NOTEBOOK_STATIC_DIR);
  fs.mkdirSync(staticDir, { recursive: true });
  const ignore = path.join(staticDir, '.gitignore');
  if (!fs.existsSync(ignore)) writeFileAtomic(ignore, '# plotly.js for the live notebook page, written by the kernel (lib/plot/display.ts)\n*\n');
  return writePlotlyFile(staticDir, notebookPlotlyFile());
}

/** Marks the loader's <script> (inlinePlotlyBundle looks for it). */
const LOADER_MARK = 'data-mixmask-plotly-loader';

/**
 * A small <script> that loads the bundle written by writeNotebookPlotlyFile into the page unless
 * window.Plotly exists: from the Jupyter server's /files/ route for the notebook's folder (classic
 * Notebook: the body's data-base-url and data-notebook-path; JupyterLab / Notebook 7: the page
 * config's baseUrl and the /tree/ path of the URL), else relative to the page. When every source
 * fails it sets window.__mixmaskPlotlyError, which the figures show in place of the plot.
 */
export function plotlyLoaderScript(): string {
  const file = `${NOTEBOOK_STATIC_DIR}/${notebookPlotlyFile()}`;
  const help = `Run this notebook's cells in a live kernel (mm.plot.setupNotebook() writes ${file} next to the notebook), or open its HTML report (npm run notebooks), which carries plotly.js inline.`;
  return `<script type="text/javascript" ${LOADER_MARK}="${plotlyVersion()}">(function(){var W=window,F=${JSON.stringify(file)};
if(W.Plotly||W.__mixmaskPlotlyLoading){return;}W.__mixmaskPlotlyLoading=true;W.__mixmaskPlotlyError=null;
var b=document.body,base=b&&b.getAttribute('data-base-url'),nb=b&&b.getAttribute('data-notebook-path'),urls=[];
if(base===null||base===undefined){var c=document.getElementById('jupyter-config-data');if(c){try{base=JSON.parse(c.textContent).baseUrl;}catch(e){}}}
if(nb===null||nb===undefined){var m=location.pathname.match(/\\/(?:lab\\/tree|lab\\/workspaces\\/[^/]+\\/tree|notebooks|tree|doc\\/tree)\\/(.*)$/);if(m){nb=m[1];}}
if(base&&nb!==null&&nb!==undefined){var parts=decodeURIComponent(nb).split('/').slice(0,-1);
urls.push(decodeURIComponent(String(base)).replace(/\\/?$/,'/')+'files/'+parts.concat(F.split('/')).map(encodeURIComponent).join('/'));}
urls.push(F);
function next(i){if(W.Plotly){W.__mixmaskPlotlyLoading=false;return;}
if(i>=urls.length){W.__mixmaskPlotlyLoading=false;W.__mixmaskPlotlyError='plotly.js could not be loaded (tried '+urls.join(', ')+'). '+${JSON.stringify(help)};return;}
var s=document.createElement('script');s.type='text/javascript';s.src=urls[i];
s.onload=function(){next(i+1);};s.onerror=function(){next(i+1);};document.head.appendChild(s);}
next(0);})();</script>`;
}

/**
 * The exported HTML of a notebook with the bundle inlined once into its <head>, so that the
 * report draws its figures offline wherever it is opened; pages without a figure loader are
 * returned unchanged.
 */
export function inlinePlotlyBundle(html: string): string {
  if (!html.includes(LOADER_MARK)) return html;
  const head = html.search(/<\/head>/i);
  const bundle = plotlyBundleScript();
  return head < 0 ? bundle + html : html.slice(0, head) + bundle + html.slice(head);
}

/**
 * HTML for one figure: a div and a script that draws it once Plotly is available. `loader` adds
 * plotlyLoaderScript (notebook outputs); `includeBundle` inlines the whole bundle instead.
 * The mode bar is hidden unless fig.config asks for it.
 */
export function figureHtml(fig: PlotlyFigure, opts: { includeBundle?: boolean; loader?: boolean; id?: string } = {}): string {
  const id = opts.id ?? `mixmask-plot-${process.pid}-${Date.now().toString(36)}-${figureCounter++}`;
  const height = typeof fig.layout?.height === 'number' ? `${fig.layout.height}px` : '450px';
  const payload = JSON.stringify({ data: fig.data, layout: fig.layout ?? {}, config: { responsive: true, displayModeBar: false, ...fig.config } })
    .replace(/</g, '\\u003c');
  const draw = `<div id="${id}" class="mixmask-plot" style="width:100%;height:${height}"></div>
<script type="text/javascript">(function(){var f=${payload};var tries=0;
function draw(){var el=document.getElementById(${JSON.stringify(id)});if(!el){return;}
if(window.Plotly){window.Plotly.newPlot(el,f.data,f.layout,f.config);}
else if(window.__mixmaskPlotlyError){el.textContent=window.__mixmaskPlotlyError;el.style.height='auto';el.style.color='#b00';}
else if(tries++<600){setTimeout(draw,50);}
else{el.textContent='plotly.js is not loaded on this page (waited 30 s): run the notebook from its first cell.';el.style.height='auto';el.style.color='#b00';}}
draw();})();</script>`;
  return (opts.includeBundle ? plotlyBundleScript() : opts.loader ? plotlyLoaderScript() : '') + draw;
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

/** Writes <dir>/<name> (default plotly.min.js: the bundle, wrapped as in plotlyBundleScript) unless present. */
export function writePlotlyFile(dir: string, name: string = PLOTLY_FILE): string {
  const file = path.join(dir, name);
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

let notebookFileWritten = false;

/** In a notebook: writes the bundle next to the notebook once per kernel (writeNotebookPlotlyFile). */
function ensureNotebookPlotlyFile(): void {
  if (notebookFileWritten) return;
  writeNotebookPlotlyFile();
  notebookFileWritten = true;
}

/**
 * Loads plotly.js into the notebook page (from mixmask-static/ next to the notebook, see the
 * top of this file). Call once at the top of a notebook; figures load it themselves too.
 */
export function setupNotebook(): void {
  if (!inNotebook()) return;
  ensureNotebookPlotlyFile();
  displayHtml(`${plotlyLoaderScript()}<div style="display:none">plotly.js ${plotlyVersion()}</div>`);
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
  if (!inNotebook()) return;
  ensureNotebookPlotlyFile();
  displayHtml(figureHtml(fig, { loader: true }));
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
