import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { METHOD_COLORS, barFigure, embeddingStdFigure, finalKnn, htmlTable, readRunLog, runSummary, sampleGridFigure, seedBand, sideBySideTables, trainingCurvesFigure } from '../../lib/plot';

function fakeRun(epochs: number, stepsPerEpoch: number, method: string, opts: { torn?: boolean } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-run-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ framework: 'moco-v2', epochs, view: { method } }));
  const lines: string[] = [];
  let step = 0;
  for (let e = 0; e < epochs; e++) {
    for (let s = 0; s < stepsPerEpoch; s++) lines.push(JSON.stringify({ type: 'step', epoch: e, step: ++step, loss: 5 - step * 0.1, lambda: 0.5, embeddingStd: 0.2 }));
    lines.push(JSON.stringify({ type: 'epoch', epoch: e, step, loss: 5 - e, knnTop1: 10 + e }));
  }
  fs.writeFileSync(path.join(dir, 'log.jsonl'), lines.join('\n') + '\n' + (opts.torn ? '{"type":"step","epo' : ''));
  return dir;
}

test('readRunLog splits step and epoch records and ignores a torn last line', () => {
  const log = readRunLog(fakeRun(3, 4, 'mixmask', { torn: true }));
  assert.equal(log.steps.length, 12);
  assert.equal(log.epochs.length, 3);
  assert.equal((log.config as { framework: string }).framework, 'moco-v2');
  assert.equal(finalKnn(log), 12);
});

test('readRunLog rejects a bad line in the middle and names a missing log', () => {
  const dir = fakeRun(1, 2, 'none');
  fs.writeFileSync(path.join(dir, 'log.jsonl'), '{"type":"step"}\nnot json\n{"type":"epoch","epoch":0}\n');
  assert.throws(() => readRunLog(dir), /line 2 is not valid JSON/);
  assert.throws(() => readRunLog(path.join(dir, 'nope')), /no log\.jsonl/);
});

test('Figure 1: two rows of axes per framework, blue baseline and red MixMask, one legend entry per method', () => {
  const runs = ['MoCo', 'SimCLR'].flatMap((group) => ['none', 'mixmask'].map((method) => ({ group, method, log: readRunLog(fakeRun(3, 4, method)) })));
  const fig = trainingCurvesFigure(runs, { title: 'Figure 1' });
  const layout = fig.layout as Record<string, Record<string, unknown>>;
  for (const ax of ['xaxis', 'xaxis2', 'xaxis3', 'xaxis4', 'yaxis', 'yaxis2', 'yaxis3', 'yaxis4']) assert.ok(layout[ax], `missing ${ax}`);
  assert.equal(fig.data.length, 8); // loss + kNN per run
  const red = fig.data.filter((t) => (t.line as { color: string }).color === METHOD_COLORS.mixmask);
  assert.equal(red.length, 4);
  assert.equal(fig.data.filter((t) => t.showlegend).length, 2);
  // Short runs: the loss row plots every step (12 points), the kNN row one point per epoch.
  assert.equal((fig.data[0].y as number[]).length, 12);
  assert.deepEqual(fig.data[1].x, [1, 2, 3]);
  const long = trainingCurvesFigure(runs.slice(0, 1), { loss: 'epoch' });
  assert.deepEqual(long.data[0].x, [1, 2, 3]);
});

test('tables escape their text; side-by-side tables and bar figures have the expected parts', () => {
  const html = htmlTable({ header: ['a<b'], rows: [['<script>', 3]], caption: 'c&d' });
  assert.ok(!html.includes('<script>'));
  assert.match(html, /&lt;script&gt;/);
  assert.match(html, /c&amp;d/);
  assert.equal(sideBySideTables([{ title: 'X', rows: [['k', 'v']] }, { title: 'Y', rows: [] }]).match(/<table/g)?.length, 2);
  const bars = barFigure(['a', 'b'], [{ name: 's', values: [1, null] }]);
  assert.deepEqual(bars.data[0].text, ['1.0', '']);
});

test('sample grids encode one PNG panel per image', () => {
  const n = 3;
  const pixels = new Uint8Array(n * 4 * 4).map((_, i) => i % 255);
  const fig = sampleGridFigure({ pixels, n, height: 4, width: 4, channels: 1 }, ['a', 'b', 'c'], 2);
  assert.equal(fig.data.length, 3);
  assert.match(String(fig.data[0].source), /^data:image\/png;base64,iVBOR/);
});

test('runSummary: last epoch loss and kNN, mean λ over the mixed steps, mean throughput', () => {
  const dir = fakeRun(2, 3, 'mixmask');
  const lines = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  // λ only on some steps (e.g. Un-Mix's probability), throughput on two.
  const steps = lines.filter((r) => r.type === 'step');
  steps.forEach((r, i) => { r.lambda = i % 2 === 0 ? 0.25 + i * 0.1 : null; });
  steps[0].imgPerSec = 100;
  steps[1].imgPerSec = 300;
  fs.writeFileSync(path.join(dir, 'log.jsonl'), lines.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const s = runSummary(readRunLog(dir));
  assert.equal(s.epochs, 2);
  assert.equal(s.steps, 6);
  assert.equal(s.finalLoss, 4);
  assert.equal(s.finalKnn, 11);
  assert.ok(Math.abs(s.meanLambda! - (0.25 + 0.45 + 0.65) / 3) < 1e-12);
  assert.equal(s.imgPerSec, 200);
  const none = runSummary({ runDir: 'x', config: null, steps: [], epochs: [] });
  assert.deepEqual(none, { epochs: 0, steps: 0, finalLoss: null, finalKnn: null, meanLambda: null, imgPerSec: null });
});

test('embeddingStdFigure: one line per run over its steps, coloured by method and dashed by group', () => {
  const runs = ['MoCo', 'BYOL'].flatMap((group) => ['none', 'mixmask'].map((method) => ({ group, method, log: readRunLog(fakeRun(1, 3, method)) })));
  const fig = embeddingStdFigure(runs, { title: 'collapse' });
  assert.equal(fig.data.length, 4);
  assert.deepEqual(fig.data.map((d) => d.name), ['MoCo baseline', 'MoCo MixMask', 'BYOL baseline', 'BYOL MixMask']);
  assert.deepEqual(fig.data[0].x, [1, 2, 3]);
  assert.deepEqual(fig.data[0].y, [0.2, 0.2, 0.2]);
  const lines = fig.data.map((d) => d.line as { color: string; dash: string });
  assert.deepEqual(lines.map((l) => l.color), [METHOD_COLORS.none, METHOD_COLORS.mixmask, METHOD_COLORS.none, METHOD_COLORS.mixmask]);
  assert.deepEqual(lines.map((l) => l.dash), ['solid', 'solid', 'dot', 'dot']);
  assert.equal((fig.layout!.yaxis as { rangemode: string }).rangemode, 'tozero');
});

test('barFigure with stack: one stacked bar per category', () => {
  const fig = barFigure(['a', 'b'], [{ name: 'x', values: [1, 2] }, { name: 'y', values: [3, 4] }], { stack: true });
  assert.equal(fig.layout!.barmode, 'stack');
  assert.deepEqual(fig.data.map((d) => d.y), [[1, 2], [3, 4]]);
  assert.equal(fig.data[0].text, undefined);
  assert.equal(barFigure(['a'], [{ name: 'x', values: [1] }]).layout!.barmode, 'group');
});

test('seedBand: mean and min–max over the x values every curve reached', () => {
  const b = seedBand([
    { x: [1, 2, 3], y: [10, 20, 30] },
    { x: [1, 2, 3], y: [14, 18, 36] },
    { x: [1, 2], y: [12, 22] }, // an unfinished run: x = 3 is left out
  ]);
  assert.deepEqual(b, { x: [1, 2], mean: [12, 20], min: [10, 18], max: [14, 22], n: 3 });
  assert.throws(() => seedBand([]), /no curves/);
  assert.throws(() => seedBand([{ x: [1, 2], y: [1] }]), /2 x values and 1 y values/);
});

test('Figure 1 with bands: one mean curve per method and a filled min–max band under it, per row', () => {
  const seeds = [0, 1, 2];
  const runs = ['MoCo', 'SimCLR'].flatMap((group) => ['none', 'mixmask'].flatMap((method) => seeds.map((s) => {
    const log = readRunLog(fakeRun(12, 2, method));
    // Seed s shifts the kNN curve by s points.
    for (const e of log.epochs) e.knnTop1 = e.knnTop1! + s;
    return { group, method, log };
  })));
  const fig = trainingCurvesFigure(runs, { bands: true, loss: 'epoch' });
  const data = fig.data as Array<Record<string, unknown>>;
  // 2 groups × 2 methods × 2 rows × (band + mean).
  assert.equal(data.length, 16);
  const bands = data.filter((d) => d.fill === 'toself');
  assert.equal(bands.length, 8);
  assert.ok(bands.every((d) => d.showlegend === false && typeof d.fillcolor === 'string' && (d.fillcolor as string).startsWith('rgba(')));
  const knnMean = data.find((d) => d.fill === undefined && d.yaxis === 'y2' && (d.line as { color: string }).color === METHOD_COLORS.mixmask)!;
  assert.deepEqual(knnMean.y, Array.from({ length: 12 }, (_, e) => 10 + e + 1)); // mean of +0, +1, +2
  const knnBand = data.find((d) => d.fill === 'toself' && d.yaxis === 'y2' && d.legendgroup === knnMean.legendgroup)!;
  const y = knnBand.y as number[];
  assert.equal(y.length, 24);
  assert.deepEqual([y[0], y[11], y[12], y[23]], [12, 23, 21, 10]); // max forwards, then min backwards
  const legend = data.filter((d) => d.showlegend === true).map((d) => d.name);
  assert.deepEqual(legend, ['baseline, mean and min–max of 3 runs', 'MixMask, mean and min–max of 3 runs']);
  // One run per method: plain curves, no band.
  const single = trainingCurvesFigure(runs.filter((_, i) => i % 3 === 0), { bands: true, loss: 'epoch' });
  assert.ok((single.data as Array<Record<string, unknown>>).every((d) => d.fill === undefined));
});
