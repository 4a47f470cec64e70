import * as fs from 'node:fs';
import { writeFileAtomic } from '../io/atomic';

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

/** A complete offline HTML page with the bundle and one or more figures. */
export function standaloneHtml(figs: PlotlyFigure[], title = 'MixMask figure'): string {
  const body = figs.map((f) => figureHtml(f)).join('\n');
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>${plotlyBundleScript()}</head>\n<body>\n${body}\n</body></html>\n`;
}

/** Writes a standalone HTML page atomically (temp file + rename). */
export function writeFigureHtml(file: string, figs: PlotlyFigure | PlotlyFigure[], title?: string): void {
  writeFileAtomic(file, standaloneHtml(Array.isArray(figs) ? figs : [figs], title));
}

type DisplayFn = (msg: { data: Record<string, string>; metadata: object; transient: object }, update: boolean) => void;

/** The tslab kernel's display channel when this code runs inside a tslab cell, else null. */
function tslabDisplay(): DisplayFn | null {
  const key = Object.keys(require.cache).find((k) => /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(k));
  if (!key) return null;
  const jupyter = require.cache[key]?.exports as { lastWriteDisplayData?: DisplayFn | null } | undefined;
  return jupyter?.lastWriteDisplayData ?? null;
}

/** Whether we run inside a tslab notebook cell. */
export function inNotebook(): boolean {
  return tslabDisplay() !== null;
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

/**
 * Shows a figure inline in tslab. Outside a notebook it does nothing unless `htmlFile` is given,
 * in which case the figure is (also) written there as a standalone page.
 */
export function showPlot(fig: PlotlyFigure, opts: { htmlFile?: string } = {}): void {
  if (opts.htmlFile) writeFigureHtml(opts.htmlFile, fig);
  if (displayHtml(figureHtml(fig, { includeBundle: !bundleSentToKernel }))) bundleSentToKernel = true;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
