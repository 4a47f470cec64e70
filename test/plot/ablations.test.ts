import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ABLATION_COLORS, ablationBarsFigure } from '../../lib/plot';

const bars = [
  { axis: 'mask type', label: 'none', value: 10, isBaseline: true },
  { axis: 'mask type', label: 'block', value: 12.34, isDefault: true },
  { axis: 'mask type', label: 'discrete', value: 11 },
  { axis: 'grid size', label: 'g = 4', value: null },
  { axis: 'grid size', label: 'g = 8', value: 12.34, isDefault: true },
  { axis: 'asymmetric loss', label: 'on', value: 12.34, isDefault: true },
  { axis: 'asymmetric loss', label: 'off', value: 9.5 },
];

test('ablationBarsFigure: one bar trace per axis with its settings and values, on its own axes, the default red', () => {
  const fig = ablationBarsFigure(bars, { title: 'Ablations', yTitle: 'kNN top-1 (%)' });
  assert.equal(fig.data.length, 3);
  assert.deepEqual(fig.data.map((d) => d.name), ['mask type', 'grid size', 'asymmetric loss']);
  assert.deepEqual(fig.data.map((d) => d.x), [['none', 'block', 'discrete'], ['g = 4', 'g = 8'], ['on', 'off']]);
  assert.deepEqual(fig.data.map((d) => d.y), [[10, 12.34, 11], [null, 12.34], [12.34, 9.5]]);
  assert.deepEqual(fig.data.map((d) => d.text), [['10.0', '12.3', '11.0'], ['', '12.3'], ['12.3', '9.5']]);
  assert.deepEqual(fig.data.map((d) => (d.marker as { color: string[] }).color), [
    [ABLATION_COLORS.baseline, ABLATION_COLORS.default, ABLATION_COLORS.other],
    [ABLATION_COLORS.other, ABLATION_COLORS.default],
    [ABLATION_COLORS.default, ABLATION_COLORS.other],
  ]);
  assert.equal(ABLATION_COLORS.default, '#d62728');
  assert.deepEqual(fig.data.map((d) => [d.xaxis, d.yaxis]), [['x', 'y'], ['x2', 'y2'], ['x3', 'y3']]);
  // Panels side by side, left to right, without overlap, each titled with its axis.
  const layout = fig.layout as Record<string, { domain?: number[]; title?: { text: string } }>;
  const domains = ['xaxis', 'xaxis2', 'xaxis3'].map((k) => layout[k].domain!);
  assert.equal(domains[0][0], 0);
  assert.ok(Math.abs(domains[2][1] - 1) < 1e-12);
  for (let i = 1; i < 3; i++) assert.ok(domains[i][0] > domains[i - 1][1]);
  assert.deepEqual((fig.layout!.annotations as Array<{ text: string }>).map((a) => a.text), ['<b>mask type</b>', '<b>grid size</b>', '<b>asymmetric loss</b>']);
  assert.equal(layout.yaxis.title!.text, 'kNN top-1 (%)');
  assert.equal(layout.yaxis2.title, undefined);
  assert.equal((fig.layout!.title as { text: string }).text, 'Ablations');
});
