import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { figureHtml, inNotebook, plotlyBundleScript, showPlot, standaloneHtml, writeFigureHtml } from '../../lib/plot';

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

test('outside a notebook showPlot displays nothing but can still write the page', () => {
  assert.equal(inNotebook(), false);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-plot-')), 'f.html');
  showPlot(fig, { htmlFile: file });
  assert.ok(fs.existsSync(file));
});
