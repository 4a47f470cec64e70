import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkPage, figureHtml, findChromium, inlinePlotlyBundle, notebookPlotlyFile, pageSize, plotlyBundleScript, screenshot, writeFigureHtml, writeNotebookPlotlyFile } from '../../lib/plot';

/** Chromium is a system dependency: CI installs it (scripts/apt-packages.txt), so there its absence fails. */
function chromiumMissing(): string | false {
  if (findChromium()) return false;
  if (process.env.CI) throw new Error('headless Chromium is not installed (apt-get install chromium)');
  return 'headless Chromium not installed';
}

const fig = { data: [{ type: 'bar', x: ['a', 'b'], y: [1, 2] }], layout: { height: 300, width: 500 } };

test('the browser check counts rendered figures and reports script errors', { skip: chromiumMissing() }, async () => {
  const chromium = findChromium()!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-browser-'));
  const good = path.join(dir, 'good.html');
  fs.writeFileSync(good, `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${plotlyBundleScript()}${figureHtml(fig)}${figureHtml(fig)}</body></html>`);
  const ok = await checkPage(chromium, good);
  assert.deepEqual([ok.figures, ok.rendered, ok.errors, ok.plotly, ok.ok], [2, 2, [], true, true]);

  // A figure container nothing draws into, and a script that throws.
  const bad = path.join(dir, 'bad.html');
  fs.writeFileSync(bad, `<!DOCTYPE html><html><head></head><body>${plotlyBundleScript()}${figureHtml(fig)}` +
    `<div id="empty" class="mixmask-plot"></div><script>undefinedFunction();</script></body></html>`);
  const r = await checkPage(chromium, bad);
  assert.equal(r.figures, 2);
  assert.equal(r.rendered, 1);
  assert.deepEqual(r.notRendered, ['empty']);
  assert.match(r.errors.join('\n'), /undefinedFunction/);
  assert.equal(r.ok, false);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['bad.html', 'good.html'], 'the injected copies were not removed');
});

test('figure pages carry their size and render to a PNG of that size', { skip: chromiumMissing() }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-browser-'));
  const page = path.join(dir, 'f.html');
  writeFigureHtml(page, fig, 'f', { bundle: 'file' });
  assert.ok(fs.existsSync(path.join(dir, 'plotly.min.js')));
  assert.deepEqual(pageSize(page), { width: 516, height: 340 });
  const png = path.join(dir, 'f.png');
  await screenshot(findChromium()!, page, png);
  const head = fs.readFileSync(png);
  assert.equal(head.subarray(1, 4).toString('ascii'), 'PNG');
  assert.equal(head.readUInt32BE(16), 516);
  assert.equal(head.readUInt32BE(20), 340);
});

test('notebook figure outputs draw from the bundle next to the page, from the inlined export, and fail visibly without either', { skip: chromiumMissing() }, async () => {
  const chromium = findChromium()!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-browser-'));
  const body = `${figureHtml(fig, { loader: true })}${figureHtml(fig, { loader: true })}`;
  const page = `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${body}</body></html>`;
  // No bundle anywhere: nothing draws, the loader's request fails.
  const missing = path.join(dir, 'missing.html');
  fs.writeFileSync(missing, page);
  const none = await checkPage(chromium, missing);
  assert.deepEqual([none.figures, none.rendered, none.plotly], [2, 0, false]);
  assert.ok(none.resourceErrors.some((u) => u.endsWith(notebookPlotlyFile())), `no failed request for the bundle: ${none.resourceErrors.join(', ')}`);
  // The exported report: the bundle inlined, no file needed.
  const exported = path.join(dir, 'exported.html');
  fs.writeFileSync(exported, inlinePlotlyBundle(page));
  const ex = await checkPage(chromium, exported);
  assert.deepEqual([ex.figures, ex.rendered, ex.errors, ex.ok], [2, 2, [], true]);
  // The kernel's file next to the page (the relative fallback of the loader).
  writeNotebookPlotlyFile(dir);
  const live = await checkPage(chromium, missing);
  assert.deepEqual([live.figures, live.rendered, live.errors, live.ok], [2, 2, [], true]);
});
