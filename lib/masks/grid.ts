import { Rng } from '../util/rng';

/**
 * Binary g×g grids for MixMask, built in plain JavaScript (they are tiny: 64 cells at g = 8)
 * and upsampled to pixels by tensor ops elsewhere (see mix.ts).
 *
 * Polarity, used everywhere in lib/masks: `keep[c] = 1` where a cell keeps its own content
 * (M = 1), `keep[c] = 0` where it is filled from the partner image (or erased). The mask
 * ratio r is the share of cells *filled*, so a grid's λ is the share *kept*. The official code
 * flips this polarity between its block and discrete masks (they agree only at r = 0.5); here
 * both generators return the same polarity.
 */
export type MaskType = 'block' | 'discrete';

export interface Grid {
  /** Cells per side (g). */
  size: number;
  /** g·g cells, row-major; 1 = keeps own content (M = 1), 0 = filled from the partner. */
  keep: Uint8Array;
  /** Number of cells with keep = 0. */
  filled: number;
  /** Cells the generator aimed to fill (block: floor(r·g²); discrete: r·g², the expectation). */
  target: number;
  type: MaskType;
}

/** Options of the BEiT-style block generator (the defaults are the paper's / BEiT's). */
export interface BlockOptions {
  /** Smallest rectangle area tried, in cells (BEiT: 4). */
  minArea?: number;
  /** Smallest aspect ratio h/w; the largest is its inverse (BEiT: 0.3). */
  minAspect?: number;
  /** Placement tries per round; a round that adds nothing ends the generator (BEiT: 10). */
  triesPerRound?: number;
}

/** Throws unless g is an integer ≥ 1. */
export function checkGridSize(g: number, what = 'gridSize'): void {
  if (typeof g !== 'number' || !Number.isInteger(g) || g < 1) {
    throw new Error(`masks: ${what} must be an integer ≥ 1, got ${String(g)}`);
  }
}

/** Throws unless r is a number in [0, 1]. */
export function checkRatio(r: number, what = 'ratio'): void {
  if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r > 1) {
    throw new Error(`masks: ${what} must be a number in [0, 1], got ${String(r)}`);
  }
}

function grid(size: number, keep: Uint8Array, target: number, type: MaskType): Grid {
  let filled = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i] === 0) filled++;
  return { size, keep, filled, target, type };
}

/**
 * BEiT-style block mask (docs/method.md#block-masks): fill T = floor(r·g²) cells with random rectangles.
 * Each round makes up to `triesPerRound` attempts to place one rectangle of area
 * U(minArea, T − placed) and aspect exp(U(ln a, ln 1/a)), with h, w < g and a uniform
 * top-left; an attempt counts when it fills between 1 and T − placed new cells. The generator
 * stops once T cells are filled or a whole round adds nothing, so it always terminates; on
 * small grids (g ≤ 2 cannot hold a 4-cell rectangle with h, w < g) it often fills fewer cells
 * than asked, possibly none. Callers must use the realised `filled`, never r.
 */
export function blockGrid(g: number, ratio: number, rng: Rng, opts: BlockOptions = {}): Grid {
  checkGridSize(g);
  checkRatio(ratio);
  const minArea = opts.minArea ?? 4;
  const minAspect = opts.minAspect ?? 0.3;
  const tries = opts.triesPerRound ?? 10;
  const logLo = Math.log(minAspect);
  const logHi = Math.log(1 / minAspect);
  // Computed in integers where possible so that e.g. 0.5·64 is exactly 32.
  const target = Math.floor(ratio * g * g + 1e-9);
  const filled = new Uint8Array(g * g); // 1 = filled here; inverted to `keep` at the end
  let placed = 0;
  while (placed < target) {
    const room = target - placed;
    let added = 0;
    for (let t = 0; t < tries && added === 0; t++) {
      // uniform(lo, hi) also covers hi < lo (room < minArea): then area ∈ [room, minArea],
      // as in BEiT, which lets the last rectangles be small.
      const area = rng.uniform(minArea, room);
      const aspect = Math.exp(rng.uniform(logLo, logHi));
      const h = Math.round(Math.sqrt(area * aspect));
      const w = Math.round(Math.sqrt(area / aspect));
      if (h >= g || w >= g) continue;
      const top = rng.int(g - h + 1);
      const left = rng.int(g - w + 1);
      let already = 0;
      for (let i = top; i < top + h; i++) for (let j = left; j < left + w; j++) already += filled[i * g + j];
      const fresh = h * w - already;
      if (fresh > 0 && fresh <= room) {
        for (let i = top; i < top + h; i++) for (let j = left; j < left + w; j++) filled[i * g + j] = 1;
        added = fresh;
      }
    }
    if (added === 0) break;
    placed += added;
  }
  const keep = new Uint8Array(g * g);
  for (let i = 0; i < keep.length; i++) keep[i] = 1 - filled[i];
  return grid(g, keep, target, 'block');
}

/** Redraws allowed before the discrete generator forces a mixed grid (see discreteGrid). */
const MAX_REDRAWS = 1000;

/**
 * Discrete mask (docs/method.md#discrete-masks): each cell filled independently with probability r, redrawn when all
 * or no cells are filled. Edge cases the official code leaves undefined (it would loop forever):
 * r = 0 and r = 1 return the all-kept / all-filled grid at once; a 1×1 grid cannot be mixed,
 * so its single draw is accepted; and after 1000 redraws (only at extreme r) one random
 * cell is flipped so that the grid is mixed.
 */
export function discreteGrid(g: number, ratio: number, rng: Rng): Grid {
  checkGridSize(g);
  checkRatio(ratio);
  const n = g * g;
  const keep = new Uint8Array(n);
  if (ratio === 0 || ratio === 1) {
    keep.fill(ratio === 0 ? 1 : 0);
    return grid(g, keep, ratio * n, 'discrete');
  }
  for (let attempt = 0; ; attempt++) {
    let filled = 0;
    for (let i = 0; i < n; i++) {
      const f = rng.next() < ratio;
      keep[i] = f ? 0 : 1;
      if (f) filled++;
    }
    if ((filled > 0 && filled < n) || n === 1) break;
    if (attempt >= MAX_REDRAWS) {
      const c = rng.int(n);
      keep[c] = 1 - keep[c];
      break;
    }
  }
  return grid(g, keep, ratio * n, 'discrete');
}

/** One grid of the given type. */
export function makeGrid(type: MaskType, g: number, ratio: number, rng: Rng, block?: BlockOptions): Grid {
  if (type === 'block') return blockGrid(g, ratio, rng, block);
  if (type === 'discrete') return discreteGrid(g, ratio, rng);
  throw new Error(`masks: maskType must be 'block' or 'discrete', got ${JSON.stringify(type)}`);
}

/**
 * `count` grids: one shared by the whole batch (`perSample` false, the paper's default; the
 * returned array then has one element) or one per sample.
 */
export function makeGrids(type: MaskType, g: number, ratio: number, rng: Rng, count: number, perSample: boolean, block?: BlockOptions): Grid[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`masks: batch size must be an integer ≥ 1, got ${count}`);
  const n = perSample ? count : 1;
  const out: Grid[] = [];
  for (let i = 0; i < n; i++) out.push(makeGrid(type, g, ratio, rng, block));
  return out;
}

/**
 * Pixel → cell map for nearest-neighbour upsampling of g cells to `size` pixels: pixel y
 * belongs to the cell holding its centre, floor((2y + 1)·g / 2·size). Integer arithmetic, so it
 * is exact; when size ≥ g every cell gets at least one pixel, and when g divides size every
 * cell gets exactly size/g pixels.
 */
export function cellIndex(size: number, g: number): Int32Array {
  const idx = new Int32Array(size);
  for (let y = 0; y < size; y++) idx[y] = Math.floor(((2 * y + 1) * g) / (2 * size));
  return idx;
}

/** Pixels per cell along one axis (the histogram of cellIndex). */
export function cellSpans(size: number, g: number): Int32Array {
  const spans = new Int32Array(g);
  const idx = cellIndex(size, g);
  for (let y = 0; y < size; y++) spans[idx[y]]++;
  return spans;
}

/** Throws unless an H×W image can hold a g×g grid (every cell ≥ 1 pixel). */
export function checkImageSize(height: number, width: number, g: number): void {
  for (const [name, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`masks: image ${name} must be a positive integer, got ${String(v)}`);
    if (v < g) throw new Error(`masks: image ${name} ${v} is smaller than gridSize ${g}; every grid cell needs at least one pixel`);
  }
}

/**
 * Realised λ of a grid at H×W pixels: the exact share of pixels that keep their own content
 * after nearest upsampling (differs from the cell share when g does not divide H or W).
 */
export function pixelLambda(gr: Grid, height: number, width: number): number {
  checkImageSize(height, width, gr.size);
  const rows = cellSpans(height, gr.size);
  const cols = cellSpans(width, gr.size);
  let kept = 0;
  for (let i = 0; i < gr.size; i++) {
    let rowKept = 0;
    for (let j = 0; j < gr.size; j++) if (gr.keep[i * gr.size + j]) rowKept += cols[j];
    kept += rows[i] * rowKept;
  }
  return kept / (height * width);
}

/** Share of cells kept (λ at cell level; equals pixelLambda when g divides H and W). */
export function cellLambda(gr: Grid): number {
  return 1 - gr.filled / (gr.size * gr.size);
}

/**
 * Number of 4-connected components among the cells with keep = `value` (default 0: the filled
 * cells). Block masks form few components, discrete masks many.
 */
export function countComponents(gr: Grid, value: 0 | 1 = 0): number {
  const g = gr.size;
  const seen = new Uint8Array(g * g);
  const stack: number[] = [];
  let count = 0;
  for (let start = 0; start < g * g; start++) {
    if (seen[start] || gr.keep[start] !== value) continue;
    count++;
    seen[start] = 1;
    stack.push(start);
    while (stack.length > 0) {
      const c = stack.pop()!;
      const i = Math.floor(c / g);
      const j = c - i * g;
      const nbrs = [i > 0 ? c - g : -1, i < g - 1 ? c + g : -1, j > 0 ? c - 1 : -1, j < g - 1 ? c + 1 : -1];
      for (const nb of nbrs) {
        if (nb >= 0 && !seen[nb] && gr.keep[nb] === value) {
          seen[nb] = 1;
          stack.push(nb);
        }
      }
    }
  }
  return count;
}

/** A grid as text ('#' filled from the partner, '.' kept), for logs and test messages. */
export function gridToString(gr: Grid): string {
  const lines: string[] = [];
  for (let i = 0; i < gr.size; i++) {
    let s = '';
    for (let j = 0; j < gr.size; j++) s += gr.keep[i * gr.size + j] ? '.' : '#';
    lines.push(s);
  }
  return lines.join('\n');
}
