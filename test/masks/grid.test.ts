import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  blockGrid,
  cellIndex,
  cellSpans,
  countComponents,
  discreteGrid,
  gridToString,
  makeGrids,
  pixelLambda,
  Grid,
} from '../../lib/masks';
import { Rng } from '../../lib/util/rng';

function fromRows(rows: string[]): Grid {
  const g = rows.length;
  const keep = new Uint8Array(g * g);
  let filled = 0;
  rows.forEach((r, i) => [...r].forEach((ch, j) => {
    keep[i * g + j] = ch === '#' ? 0 : 1;
    if (ch === '#') filled++;
  }));
  return { size: g, keep, filled, target: filled, type: 'block' };
}

test('countComponents counts 4-connected regions (diagonals do not connect)', () => {
  assert.equal(countComponents(fromRows(['##..', '##..', '....', '...#'])), 2);
  assert.equal(countComponents(fromRows(['#.#.', '.#.#', '#.#.', '.#.#'])), 8);
  assert.equal(countComponents(fromRows(['#.#.', '.#.#', '#.#.', '.#.#']), 1), 8);
  assert.equal(countComponents(fromRows(['....', '....', '....', '....'])), 0);
  assert.equal(countComponents(fromRows(['####', '#..#', '#..#', '####'])), 1);
});

test('block masks at g = 8, r = 0.5 usually fill exactly 32 cells, in few connected blocks', () => {
  const rng = new Rng(1);
  const draws = 500;
  let exact = 0;
  let components = 0;
  for (let i = 0; i < draws; i++) {
    const gr = blockGrid(8, 0.5, rng);
    assert.equal(gr.target, 32);
    assert.ok(gr.filled <= 32, `block generator overshot:\n${gridToString(gr)}`);
    if (gr.filled === 32) exact++;
    components += countComponents(gr);
  }
  assert.ok(exact / draws > 0.9, `only ${exact}/${draws} draws reached 32 cells`);
  const mean = components / draws;
  assert.ok(mean < 2.5, `block masks average ${mean.toFixed(2)} components, expected few`);
});

// Measured over 2,000 draws at g = 8, r = 0.5: block 1.4 components on average (95% exactly 32
// cells), discrete 7.1 (4-connected components of a p = 0.5 site percolation below threshold).
test('discrete masks scatter: many components, about r·g² cells filled', () => {
  const rng = new Rng(2);
  const draws = 500;
  let components = 0;
  let filled = 0;
  for (let i = 0; i < draws; i++) {
    const gr = discreteGrid(8, 0.5, rng);
    components += countComponents(gr);
    filled += gr.filled;
  }
  const meanComp = components / draws;
  assert.ok(meanComp > 5, `discrete masks average ${meanComp.toFixed(2)} components, expected many`);
  assert.ok(Math.abs(filled / draws - 32) < 1, `mean filled ${filled / draws}`);
  // And clearly more than block masks under the same seed budget.
  let blockComp = 0;
  for (let i = 0; i < draws; i++) blockComp += countComponents(blockGrid(8, 0.5, rng));
  assert.ok(meanComp > 3 * (blockComp / draws));
});

test('block rectangles respect h, w < g and keep polarity: keep = 1 means own content', () => {
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) {
    const gr = blockGrid(8, 0.25, rng);
    let ones = 0;
    for (const v of gr.keep) ones += v;
    assert.equal(ones, 64 - gr.filled);
    assert.ok(gr.filled <= 16);
  }
});

test('small grids terminate and report what they realised', () => {
  const rng = new Rng(4);
  for (const g of [1, 2, 3]) {
    for (const r of [0, 0.25, 0.5, 0.75, 1]) {
      for (let i = 0; i < 200; i++) {
        const b = blockGrid(g, r, rng);
        assert.ok(b.filled <= Math.floor(r * g * g + 1e-9));
        const d = discreteGrid(g, r, rng);
        if (g > 1 && r > 0 && r < 1) assert.ok(d.filled > 0 && d.filled < g * g, 'discrete redraws all/none grids');
      }
    }
  }
  // g = 1: no rectangle fits (h, w < 1 is impossible), so the block generator fills nothing.
  assert.equal(blockGrid(1, 1, rng).filled, 0);
  // g = 2, r = 0.5: the 4-cell minimum area rarely rounds to 1×1, so most draws stay empty.
  let empty = 0;
  for (let i = 0; i < 500; i++) if (blockGrid(2, 0.5, rng).filled === 0) empty++;
  assert.ok(empty > 250, `g = 2: ${empty}/500 empty draws`);
});

test('ratio 0 and 1', () => {
  const rng = new Rng(5);
  assert.equal(blockGrid(8, 0, rng).filled, 0);
  assert.equal(discreteGrid(8, 0, rng).filled, 0);
  assert.equal(discreteGrid(8, 1, rng).filled, 64);
  // A block mask builds the whole grid from rectangles smaller than the grid; it gets close.
  const full = blockGrid(8, 1, rng);
  assert.ok(full.filled > 48 && full.filled <= 64, `r = 1 filled ${full.filled}`);
  // Extreme but valid ratio: the discrete generator still ends with a mixed grid.
  const tiny = discreteGrid(2, 1e-9, rng);
  assert.ok(tiny.filled > 0 && tiny.filled < 4);
});

test('invalid arguments fail with a message naming the argument and its value', () => {
  const rng = new Rng(6);
  assert.throws(() => blockGrid(0, 0.5, rng), /gridSize must be an integer ≥ 1, got 0/);
  assert.throws(() => discreteGrid(2.5, 0.5, rng), /gridSize must be an integer ≥ 1, got 2\.5/);
  assert.throws(() => blockGrid(8, 1.5, rng), /ratio must be a number in \[0, 1\], got 1\.5/);
  assert.throws(() => discreteGrid(8, -0.1, rng), /ratio must be a number in \[0, 1\], got -0\.1/);
  assert.throws(() => blockGrid(8, NaN, rng), /ratio .* got NaN/);
  assert.throws(() => pixelLambda(blockGrid(8, 0.5, rng), 4, 32), /height 4 is smaller than gridSize 8/);
  assert.throws(() => makeGrids('stripes' as never, 8, 0.5, rng, 4, false), /maskType must be 'block' or 'discrete', got "stripes"/);
});

test('the same seed reproduces the same grids', () => {
  const a = makeGrids('block', 8, 0.5, new Rng(42), 16, true);
  const b = makeGrids('block', 8, 0.5, new Rng(42), 16, true);
  assert.deepEqual(a, b);
  const c = makeGrids('discrete', 8, 0.5, new Rng(42), 16, true);
  const d = makeGrids('discrete', 8, 0.5, new Rng(42), 16, true);
  assert.deepEqual(c, d);
  assert.notDeepEqual(a, makeGrids('block', 8, 0.5, new Rng(43), 16, true));
  assert.equal(makeGrids('block', 8, 0.5, new Rng(1), 16, false).length, 1);
});

test('nearest upsampling map: every cell gets pixels; equal spans when g divides the size', () => {
  assert.deepEqual(Array.from(cellSpans(32, 8)), [4, 4, 4, 4, 4, 4, 4, 4]);
  assert.deepEqual(Array.from(cellSpans(224, 8)), Array(8).fill(28));
  for (const [size, g] of [[32, 5], [64, 7], [224, 9], [8, 8], [9, 8], [33, 32]]) {
    const spans = cellSpans(size, g);
    assert.equal(spans.reduce((a, b) => a + b, 0), size);
    assert.ok(spans.every((s) => s === Math.floor(size / g) || s === Math.ceil(size / g)), `${size}/${g}: ${spans}`);
    const idx = cellIndex(size, g);
    for (let y = 1; y < size; y++) assert.ok(idx[y] === idx[y - 1] || idx[y] === idx[y - 1] + 1);
  }
});

test('pixel λ weighs cells by their pixel spans', () => {
  // g = 3 on 4 pixels: spans [1, 2, 1]; filling the centre cell removes 2·2 of 16 pixels.
  assert.deepEqual(Array.from(cellSpans(4, 3)), [1, 2, 1]);
  assert.equal(pixelLambda(fromRows(['...', '.#.', '...']), 4, 4), 12 / 16);
  assert.equal(pixelLambda(fromRows(['#..', '...', '...']), 4, 4), 15 / 16);
});
