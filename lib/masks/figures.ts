import * as zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { BlockOptions, Grid, MaskType, countComponents, makeGrid, pixelLambda } from './grid';

/**
 * Figure builders for the mask notebook (04-mask-patterns): plain plotly figure objects (show
 * them with lib/plot's showPlot) and the small helpers they need — PNG encoding of images so
 * that a 224×224 photograph travels as a compact data URI instead of 150,000 numbers, and
 * statistics of many mask draws.
 */
export interface MaskFigure {
  data: Array<Record<string, unknown>>;
  layout: Record<string, unknown>;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), Buffer.from(data)]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** Encodes 8-bit pixels (row-major, `channels` = 1 grey or 3 RGB per pixel) as a PNG file. */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 = 3): Buffer {
  if (pixels.length !== width * height * channels) {
    throw new Error(`encodePng: expected ${width}×${height}×${channels} = ${width * height * channels} bytes, got ${pixels.length}`);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 3 ? 2 : 0; // colour type: truecolour or greyscale
  // Each scanline starts with filter type 0 (none); zlib does the compression.
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

/**
 * A data URI (PNG) of one image tensor [H, W, C] (C = 1 or 3) or [H, W] with values in [0, 1]
 * (`scale` 255, the default) or [0, 255] (`scale` 1). Values are clipped and rounded, and read
 * with `await data()`, so this works on every backend (webgpu included).
 */
export async function imageDataUri(img: tf.Tensor, scale = 255): Promise<string> {
  const { pixels, width, height, channels } = await imagePixels(img, scale);
  return `data:image/png;base64,${encodePng(pixels, width, height, channels).toString('base64')}`;
}

/** The 8-bit pixels (row-major) of one image tensor, as imageDataUri reads them. */
export async function imagePixels(img: tf.Tensor, scale = 255): Promise<{ pixels: Uint8Array; width: number; height: number; channels: 1 | 3 }> {
  const shape = img.shape;
  if (img.rank !== 2 && img.rank !== 3) throw new Error(`imageDataUri: expected [H, W] or [H, W, C], got [${shape.join(', ')}]`);
  const [h, w] = shape;
  const c = img.rank === 3 ? shape[2] : 1;
  if (c !== 1 && c !== 3) throw new Error(`imageDataUri: expected 1 or 3 channels, got ${c}`);
  const t = tf.tidy(() => tf.clipByValue(tf.round(tf.mul(img, scale)), 0, 255).cast('int32'));
  try {
    return { pixels: Uint8Array.from(await t.data()), width: w, height: h, channels: c as 1 | 3 };
  } finally {
    t.dispose();
  }
}

/** A panel of an image grid: a title and an image as a data URI (imageDataUri) or nothing (blank). */
export interface ImagePanel {
  title: string;
  src?: string;
}

/**
 * Images in a grid of `cols` columns, one plotly `image` trace per panel on its own pair of
 * axes (ticks hidden, square pixels). `size` is the pixel size of each image (for the layout).
 */
export function imageGridFigure(panels: ImagePanel[], cols: number, opts: { title?: string; size: number; panelPx?: number }): MaskFigure {
  const rows = Math.ceil(panels.length / cols);
  const gap = 0.03;
  const cw = (1 - gap * (cols - 1)) / cols;
  const rh = (1 - gap * 2 * (rows - 1)) / rows;
  const data: Array<Record<string, unknown>> = [];
  const layout: Record<string, unknown> = {
    title: opts.title ? { text: opts.title } : undefined,
    showlegend: false,
    margin: { l: 10, r: 10, t: opts.title ? 70 : 40, b: 10 },
    height: rows * (opts.panelPx ?? 240) + (opts.title ? 80 : 40),
    annotations: [] as unknown[],
  };
  panels.forEach((p, k) => {
    const r = Math.floor(k / cols);
    const c = k % cols;
    const ax = k === 0 ? '' : String(k + 1);
    const x0 = c * (cw + gap);
    const y1 = 1 - r * (rh + 2 * gap);
    layout[`xaxis${ax}`] = { domain: [x0, x0 + cw], visible: false, range: [-0.5, opts.size - 0.5] };
    layout[`yaxis${ax}`] = { domain: [y1 - rh, y1], visible: false, range: [opts.size - 0.5, -0.5], scaleanchor: `x${ax}` };
    if (p.src) data.push({ type: 'image', source: p.src, xaxis: `x${ax}`, yaxis: `y${ax}`, hoverinfo: 'skip' });
    (layout.annotations as unknown[]).push({
      text: p.title,
      x: x0 + cw / 2,
      y: y1,
      xref: 'paper',
      yref: 'paper',
      xanchor: 'center',
      yanchor: 'bottom',
      showarrow: false,
      font: { size: 12 },
    });
  });
  return { data, layout };
}

/**
 * Cell grids as heatmaps in a grid of panels (black = filled from the partner, white = own),
 * e.g. one row per grid size and one column per ratio.
 */
export function gridHeatmapFigure(panels: Array<{ title: string; grid: Grid }>, cols: number, opts: { title?: string; panelPx?: number } = {}): MaskFigure {
  const rows = Math.ceil(panels.length / cols);
  const gap = 0.04;
  const cw = (1 - gap * (cols - 1)) / cols;
  const rh = (1 - gap * 2 * (rows - 1)) / rows;
  const data: Array<Record<string, unknown>> = [];
  const annotations: unknown[] = [];
  const layout: Record<string, unknown> = {
    title: opts.title ? { text: opts.title } : undefined,
    showlegend: false,
    margin: { l: 10, r: 10, t: opts.title ? 70 : 40, b: 10 },
    height: rows * (opts.panelPx ?? 170) + (opts.title ? 80 : 40),
    annotations,
  };
  panels.forEach((p, k) => {
    const g = p.grid.size;
    const z: number[][] = [];
    for (let i = 0; i < g; i++) z.push(Array.from(p.grid.keep.subarray(i * g, (i + 1) * g)));
    const r = Math.floor(k / cols);
    const c = k % cols;
    const ax = k === 0 ? '' : String(k + 1);
    const x0 = c * (cw + gap);
    const y1 = 1 - r * (rh + 2 * gap);
    layout[`xaxis${ax}`] = { domain: [x0, x0 + cw], visible: false, range: [-0.5, g - 0.5], constrain: 'domain' };
    layout[`yaxis${ax}`] = { domain: [y1 - rh, y1], visible: false, autorange: 'reversed', scaleanchor: `x${ax}`, constrain: 'domain' };
    data.push({
      type: 'heatmap',
      z,
      zmin: 0,
      zmax: 1,
      colorscale: [[0, '#111111'], [1, '#f4f4f4']],
      showscale: false,
      xgap: g <= 16 ? 1 : 0,
      ygap: g <= 16 ? 1 : 0,
      xaxis: `x${ax}`,
      yaxis: `y${ax}`,
      hovertemplate: 'row %{y}, col %{x}: %{z}<extra></extra>',
    });
    annotations.push({ text: p.title, x: x0 + cw / 2, y: y1, xref: 'paper', yref: 'paper', xanchor: 'center', yanchor: 'bottom', showarrow: false, font: { size: 11 } });
  });
  return { data, layout };
}

/** Statistics of many mask draws. */
export interface MaskDrawStats {
  type: MaskType;
  gridSize: number;
  ratio: number;
  /** Realised λ (share of own pixels at height×width) per draw. */
  lambdas: number[];
  /** Filled cells per draw. */
  filled: number[];
  /** 4-connected components of the filled cells per draw. */
  components: number[];
}

/** Draws `draws` grids and records realised λ, filled cells and connected components. */
export function maskDrawStats(type: MaskType, gridSize: number, ratio: number, draws: number, rng: Rng, opts: { height?: number; width?: number; block?: BlockOptions } = {}): MaskDrawStats {
  const h = opts.height ?? 224;
  const w = opts.width ?? h;
  const out: MaskDrawStats = { type, gridSize, ratio, lambdas: [], filled: [], components: [] };
  for (let i = 0; i < draws; i++) {
    const gr = makeGrid(type, gridSize, ratio, rng, opts.block);
    out.lambdas.push(pixelLambda(gr, h, w));
    out.filled.push(gr.filled);
    out.components.push(countComponents(gr));
  }
  return out;
}
