import * as tf from '@tensorflow/tfjs';
import { encodeJpeg } from '../data/decode';
import { encodePng, imageDataUri, imageGridFigure, imagePixels, type ImagePanel, type MaskDrawStats } from '../masks/figures';
import { countComponents, makeGrid, pixelLambda, type Grid, type MaskType } from '../masks/grid';
import { flipIndex, mixWithPartner, upsampleGrid } from '../masks/mix';
import type { Rng } from '../util/rng';
import type { PlotlyFigure } from './display';
import { METHOD_COLORS } from './runs';

/**
 * The figures of the mask notebook (04-mask-patterns) that show grids applied to real images:
 * Figure 2 of the supplementary (inputs, masks and mixed images), slider figures over mask
 * settings, and histograms of many mask draws. Masks follow docs/method.md (masks): M = 1 where a
 * pixel keeps its own content, λ = mean(M) as realised.
 */

/**
 * A photograph as a data URI: JPEG (quality 90) from 64×64 pixels up where sharp is installed,
 * else PNG (exact; small images are small as PNG anyway). Saved notebooks stay light this way
 * (a 224-pixel photo: ~20 KB instead of ~150 KB as PNG).
 */
export async function photoDataUri(img: tf.Tensor): Promise<string> {
  const { pixels, width, height, channels } = await imagePixels(img);
  const jpeg = width * height >= 64 * 64 ? await encodeJpeg(pixels, width, height, channels) : null;
  return jpeg ? `data:image/jpeg;base64,${jpeg.toString('base64')}` : `data:image/png;base64,${encodePng(pixels, width, height, channels).toString('base64')}`;
}

/** One grid applied to a batch: its pixel mask (PNG) and each mixed image (photoDataUri) as data URIs, with the realised λ. */
export interface MixedImages {
  /** The pixel mask (white = own content, black = filled from the partner). */
  mask: string;
  /** Image i with its partner's content in the masked cells, for every i of the batch. */
  mixed: string[];
  lambda: number;
  /** 4-connected blocks of filled cells. */
  components: number;
}

/** Applies `grid` to every image of `images` [n, h, w, c] with `partner` (default: the batch reversed). */
export async function mixedImages(images: tf.Tensor4D, grid: Grid, partner: Int32Array = flipIndex(images.shape[0])): Promise<MixedImages> {
  const [, h, w] = images.shape;
  const { mask, rows } = tf.tidy(() => {
    const m = upsampleGrid(grid, h, w);
    return { mask: tf.squeeze(m, [0]) as tf.Tensor3D, rows: tf.unstack(mixWithPartner(images, m, partner)) as tf.Tensor3D[] };
  });
  try {
    return {
      mask: await imageDataUri(mask),
      mixed: await Promise.all(rows.map((r) => photoDataUri(r))),
      lambda: pixelLambda(grid, h, w),
      components: countComponents(grid),
    };
  } finally {
    tf.dispose([mask, ...rows]);
  }
}

/** Each image of a batch [n, h, w, c] as a data URI (photoDataUri). */
export async function imageDataUris(images: tf.Tensor4D): Promise<string[]> {
  const rows = tf.unstack(images);
  try {
    return await Promise.all(rows.map((r) => photoDataUri(r)));
  } finally {
    tf.dispose(rows);
  }
}

/**
 * Supplementary Figure 2 for two images A and B mixed with each other (the flip partner): a first
 * row with the inputs, then one row per grid — the mask (titled with its name, realised λ and
 * number of blocks), A with B in the masked cells, B with A in them. Panels are lettered (a), (b), …
 */
export async function maskPatternsFigure(
  images: tf.Tensor4D,
  grids: Array<{ name: string; grid: Grid }>,
  opts: { title?: string; panelPx?: number } = {},
): Promise<PlotlyFigure> {
  const [n, size] = images.shape;
  if (n !== 2) throw new Error(`maskPatternsFigure: expected a batch of two images (A and B), got ${n}`);
  const letter = (k: number) => `(${String.fromCharCode(97 + k)})`;
  const [a, b] = await imageDataUris(images);
  const panels: ImagePanel[] = [{ title: `${letter(0)} input A`, src: a }, { title: `${letter(1)} input B`, src: b }, { title: '' }];
  for (const [i, g] of grids.entries()) {
    const m = await mixedImages(images, g.grid);
    const k = 2 + 3 * i;
    panels.push(
      { title: `${letter(k)} ${g.name} mask · λ = ${m.lambda.toFixed(3)} · ${m.components} blocks`, src: m.mask },
      { title: `${letter(k + 1)} A with B in the masked cells`, src: m.mixed[0] },
      { title: `${letter(k + 2)} B with A in the masked cells`, src: m.mixed[1] },
    );
  }
  return imageGridFigure(panels, 3, { size, panelPx: opts.panelPx ?? 280, title: opts.title });
}

/** One position of a mask slider: its label and the grid size and ratio drawn there. */
export interface MaskSetting {
  label: string;
  gridSize: number;
  ratio: number;
}

/**
 * A slider over mask settings: at each step, the first image of `images` mixed with its partner
 * (the batch reversed) under one freshly drawn grid of each type (side by side), titled with the
 * filled cells and realised λ. Only the active step's images are visible; moving the slider
 * swaps images and titles.
 */
export async function maskSliderFigure(
  images: tf.Tensor4D,
  settings: MaskSetting[],
  opts: { active: number; rng: Rng; title?: string; prefix?: string; types?: MaskType[]; height?: number },
): Promise<PlotlyFigure> {
  const types = opts.types ?? ['block', 'discrete'];
  if (types.length !== 2) throw new Error(`maskSliderFigure: types must name two mask types (left, right), got ${JSON.stringify(types)}`);
  if (!Number.isInteger(opts.active) || opts.active < 0 || opts.active >= settings.length) {
    throw new Error(`maskSliderFigure: active must index one of the ${settings.length} settings, got ${opts.active}`);
  }
  const [, h, w] = images.shape;
  const data: Array<Record<string, unknown>> = [];
  const titles: string[][] = [];
  for (const [k, s] of settings.entries()) {
    const row: string[] = [];
    for (const [t, type] of types.entries()) {
      const grid = makeGrid(type, s.gridSize, s.ratio, opts.rng);
      const m = await mixedImages(images, grid);
      data.push({ type: 'image', source: m.mixed[0], xaxis: t ? 'x2' : 'x', yaxis: t ? 'y2' : 'y', visible: k === opts.active, hoverinfo: 'skip' });
      row.push(`${type}: g = ${s.gridSize}, r = ${s.ratio} → ${grid.filled}/${s.gridSize ** 2} cells, λ = ${m.lambda.toFixed(3)}`);
    }
    titles.push(row);
  }
  const annotations = (k: number) => titles[k].map((text, t) => ({
    text, x: t ? 0.76 : 0.24, y: 1.0, xref: 'paper', yref: 'paper', xanchor: 'center', yanchor: 'bottom', showarrow: false, font: { size: 12 },
  }));
  const xaxis = (domain: number[]) => ({ domain, visible: false, range: [-0.5, w - 0.5] });
  const yaxis = (anchor: string) => ({ visible: false, range: [h - 0.5, -0.5], scaleanchor: anchor });
  return {
    data,
    layout: {
      title: opts.title ? { text: opts.title } : undefined,
      height: opts.height ?? 480,
      margin: { l: 10, r: 10, t: 80, b: 10 },
      xaxis: xaxis([0, 0.48]), yaxis: yaxis('x'), xaxis2: xaxis([0.52, 1]), yaxis2: yaxis('x2'),
      annotations: annotations(opts.active),
      sliders: [{
        active: opts.active,
        currentvalue: { prefix: opts.prefix ?? '' },
        pad: { t: 20 },
        steps: settings.map((s, k) => ({
          label: s.label,
          method: 'update',
          args: [{ visible: data.map((_, i) => Math.floor(i / types.length) === k) }, { annotations: annotations(k) }],
        })),
      }],
    },
  };
}

/** Colours of the mask types: block red (the paper's MixMask), discrete blue. */
export const MASK_TYPE_COLORS: Record<MaskType, string> = { block: METHOD_COLORS.mixmask, discrete: METHOD_COLORS.none };

/**
 * Overlaid histograms of many mask draws (maskDrawStats), one per mask type: of the realised λ
 * (one bin per possible share of filled cells, 1/g²) or of the number of connected blocks (one
 * bin per count).
 */
export function drawStatsHistogram(stats: MaskDrawStats[], field: 'lambdas' | 'components', opts: { title?: string; height?: number; xRange?: [number, number] } = {}): PlotlyFigure {
  const xbins = (s: MaskDrawStats) => {
    if (field === 'components') return { start: -0.5, end: Math.max(0, ...s.components) + 0.5, size: 1 };
    const cell = 1 / s.gridSize ** 2;
    return { start: -cell / 2, end: 1 + cell / 2, size: cell };
  };
  return {
    data: stats.map((s) => ({ type: 'histogram', name: s.type, x: s[field], xbins: xbins(s), opacity: 0.6, marker: { color: MASK_TYPE_COLORS[s.type] } })),
    layout: {
      title: opts.title ? { text: opts.title } : undefined,
      barmode: 'overlay',
      xaxis: { title: { text: field === 'lambdas' ? 'λ' : 'connected blocks' }, range: opts.xRange },
      yaxis: { title: { text: 'draws' } },
      height: opts.height ?? 380,
    },
  };
}

/** What a table of mask draws reports: means, the target cell count floor(r·g²) and how often it was reached. */
export interface DrawStatsSummary {
  meanLambda: number;
  meanComponents: number;
  targetCells: number;
  /** Share of draws that filled exactly the target number of cells. */
  reachedTarget: number;
}

export function drawStatsSummary(s: MaskDrawStats): DrawStatsSummary {
  if (s.lambdas.length === 0) throw new Error(`drawStatsSummary: no draws (${s.type}, g = ${s.gridSize})`);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const targetCells = Math.floor(s.ratio * s.gridSize ** 2);
  return {
    meanLambda: mean(s.lambdas),
    meanComponents: mean(s.components),
    targetCells,
    reachedTarget: s.filled.filter((f) => f === targetCells).length / s.filled.length,
  };
}
