import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  NOTEBOOK_STATIC_DIR, figureHtml, inlinePlotlyBundle, lastSavedFigure, notebookPlotlyFile, plotlyBundleScript, plotlyVersion, showPlot, standaloneHtml,
  writeFigureHtml, writeNotebookPlotlyFile,
} from '../../lib/plot';
import { inNotebook } from '../../lib/util/tslab';

const fig = { data: [{ type: 'scatter', x: [1, 2], y: [3, 4], name: '</script><b>x' }], layout: { height: 300 } };

test('figure HTML carries the data, escapes markup and sizes the div', () => {
  const html = figureHtml(fig, { id: 'p1' });
  assert.match(html, /<div id="p1" class="mixmask-plot" style="width:100%;height:300px">/);
  assert.match(html, /Plotly\.newPlot/);
  assert.ok(!html.includes('</script><b>'), 'a data string closed the script tag');
  assert.ok(!html.includes('window.Plotly = Plotly'), 'bundle included without being asked for');
  assert.ok(figureHtml(fig, { includeBundle: true }).includes('window.Plotly = Plotly'));
});

test('the inlined bundle works where require.js is present and cannot close its own script tag', () => {
  const script = plotlyBundleScript();
  assert.match(script, /^<script type="text\/javascript">\(function\(\)\{var define, module, exports;/);
  assert.equal(script.match(/<\/script/gi)?.length, 1);
  assert.ok(script.length > 1_000_000, 'bundle suspiciously small');
});

test('standalone pages are complete and written atomically', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-plot-'));
  const file = path.join(dir, 'sub', 'fig.html');
  writeFigureHtml(file, [fig, fig], 'two <figures>');
  const page = fs.readFileSync(file, 'utf8');
  assert.match(page, /^<!DOCTYPE html>/);
  assert.match(page, /<title>two &lt;figures&gt;<\/title>/);
  assert.equal(page.match(/class="mixmask-plot"/g)?.length, 2);
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['fig.html']);
  assert.equal(standaloneHtml([fig]).match(/window\.Plotly = Plotly/g)?.length, 1);
});

test('with MIXMASK_FIGURE_DIR set, showPlot saves each figure under a unique name next to one plotly.min.js', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-figs-'));
  process.env.MIXMASK_FIGURE_DIR = dir;
  let last: string | null = null;
  try {
    showPlot(fig, { name: 'loss curves' });
    showPlot(fig, { name: 'loss curves' });
    showPlot(fig);
    last = lastSavedFigure();
  } finally {
    delete process.env.MIXMASK_FIGURE_DIR;
  }
  const files = fs.readdirSync(dir).sort();
  assert.equal(files.length, 4);
  assert.ok(files.includes('plotly.min.js') && files.includes('loss-curves.html') && files.includes('loss-curves-2.html'));
  assert.ok(files.some((f) => /^figure-\d+\.html$/.test(f)));
  const page = fs.readFileSync(path.join(dir, 'loss-curves.html'), 'utf8');
  assert.match(page, /<script type="text\/javascript" src="plotly\.min\.js">/);
  assert.match(page, /<meta name="mixmask-size" content="1016x340">/);
  assert.match(page, /"displayModeBar":false/);
  assert.ok(!page.includes('window.Plotly = Plotly'), 'the bundle is inlined into every page');
  assert.match(fs.readFileSync(path.join(dir, 'plotly.min.js'), 'utf8').slice(0, 100), /^\(function\(\)\{var define, module, exports;/);
  assert.match(last ?? '', /figure-\d+\.html$/);
});

test('outside a notebook showPlot displays nothing but can still write the page', () => {
  assert.equal(inNotebook(), false);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-plot-')), 'f.html');
  showPlot(fig, { htmlFile: file });
  assert.ok(fs.existsSync(file));
});

test('a notebook figure output loads plotly.js from the server instead of carrying it, and hides the mode bar', () => {
  const html = figureHtml(fig, { loader: true, id: 'p2' });
  assert.ok(!html.includes('window.Plotly = Plotly'), 'the 4.6 MB bundle is in a notebook output');
  assert.ok(html.length < 5_000, `a two-point figure output weighs ${html.length} characters`);
  assert.ok(html.includes(`${NOTEBOOK_STATIC_DIR}/plotly-${plotlyVersion()}.min.js`), 'the loader does not name the versioned file');
  assert.match(html, /data-mixmask-plotly-loader=/);
  assert.match(html, /'files\/'/, 'the loader does not use the Jupyter server\'s /files/ route');
  assert.match(html, /plotly\.js could not be loaded \(tried /, 'no message for a bundle that cannot be loaded');
  assert.match(html, /"displayModeBar":false/);
  assert.match(figureHtml({ ...fig, config: { displayModeBar: true } }), /"displayModeBar":true/, 'a figure cannot ask for its mode bar');
});

test('the kernel writes the bundle once next to the notebook, in a folder that git-ignores itself', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-nb-'));
  const file = writeNotebookPlotlyFile(dir);
  assert.equal(file, path.join(dir, NOTEBOOK_STATIC_DIR, notebookPlotlyFile()));
  assert.match(fs.readFileSync(file, 'utf8').slice(0, 100), /^\(function\(\)\{var define, module, exports;/);
  assert.match(fs.readFileSync(path.join(dir, NOTEBOOK_STATIC_DIR, '.gitignore'), 'utf8'), /^\*$/m);
  const mtime = fs.statSync(file).mtimeMs;
  assert.equal(writeNotebookPlotlyFile(dir), file);
  assert.equal(fs.statSync(file).mtimeMs, mtime, 'rewritten although present');
});

test('an exported notebook gets the bundle inlined once; pages without figures stay as they are', () => {
  const exported = `<!DOCTYPE html><html><head><title>nb</title></head><body>${figureHtml(fig, { loader: true })}${figureHtml(fig, { loader: true })}</body></html>`;
  const out = inlinePlotlyBundle(exported);
  assert.equal(out.match(/window\.Plotly = Plotly/g)?.length, 1);
  assert.ok(out.indexOf('window.Plotly = Plotly') < out.indexOf('</head>'), 'the bundle is not in <head>');
  assert.equal(out.length, exported.length + plotlyBundleScript().length);
  const plain = '<html><head></head><body>no figures</body></html>';
  assert.equal(inlinePlotlyBundle(plain), plain);
});
