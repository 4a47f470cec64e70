import { encodePng, imageGridFigure, type ImagePanel } from '../masks/figures';
import type { PlotlyFigure } from './display';

/**
 * Small builders the notebooks share besides plotly curves: HTML tables (rendered inline by
 * Jupyter and by nbconvert's HTML, no script needed), grouped bar charts and grids of raw
 * dataset images.
 */
export interface HtmlTable {
  header?: string[];
  rows: Array<Array<string | number>>;
  caption?: string;
  /** Plain text in cells is escaped; pass html: true to insert cell markup as is. */
  html?: boolean;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

const TABLE_STYLE = 'border-collapse:collapse;margin:4px 16px 4px 0;font-size:13px';
const CELL = 'border-bottom:1px solid #ddd;padding:3px 10px;text-align:left';

/** One HTML table with an optional header row and caption. */
export function htmlTable(t: HtmlTable): string {
  const cell = (v: string | number) => (t.html ? String(v) : escapeHtml(String(v)));
  const head = t.header ? `<thead><tr>${t.header.map((h) => `<th style="${CELL};border-bottom:2px solid #333">${cell(h)}</th>`).join('')}</tr></thead>` : '';
  const body = t.rows.map((r) => `<tr>${r.map((v) => `<td style="${CELL}">${cell(v)}</td>`).join('')}</tr>`).join('');
  const caption = t.caption ? `<caption style="caption-side:bottom;text-align:left;padding-top:6px;color:#555">${escapeHtml(t.caption)}</caption>` : '';
  return `<table class="mixmask-table" style="${TABLE_STYLE}">${caption}${head}<tbody>${body}</tbody></table>`;
}

/**
 * Several tables next to each other (the paper prints Table 1 as three side-by-side
 * hparam/value tables), with one caption below all of them.
 */
export function sideBySideTables(tables: Array<{ title: string; rows: Array<[string, string]> }>, caption?: string): string {
  const parts = tables.map((t) => htmlTable({ header: [t.title, 'value'], rows: t.rows }));
  const cap = caption ? `<div style="color:#555;font-size:13px;margin-top:4px">${escapeHtml(caption)}</div>` : '';
  return `<div class="mixmask-tables"><div style="display:flex;flex-wrap:wrap;align-items:flex-start">${parts.join('')}</div>${cap}</div>`;
}

export interface BarSeries {
  name: string;
  values: Array<number | null>;
  color?: string;
  /** Text above each bar (default: the value with 1 decimal). */
  text?: string[];
}

/**
 * Grouped bars: one group per category, one bar per series, its value written above it. With
 * `stack`, the series are stacked into one bar per category instead (no text unless a series
 * gives it).
 */
export function barFigure(categories: string[], series: BarSeries[], opts: { title?: string; yTitle?: string; xTitle?: string; height?: number; yRange?: [number, number]; stack?: boolean } = {}): PlotlyFigure {
  return {
    data: series.map((s) => ({
      type: 'bar', name: s.name, x: categories, y: s.values, marker: s.color ? { color: s.color } : undefined,
      text: s.text ?? (opts.stack ? undefined : s.values.map((v) => (v === null ? '' : v.toFixed(1)))), textposition: opts.stack ? 'inside' : 'outside', cliponaxis: false,
    })),
    layout: {
      title: opts.title ? { text: opts.title } : undefined,
      barmode: opts.stack ? 'stack' : 'group',
      height: opts.height ?? 420,
      xaxis: { type: 'category', title: opts.xTitle ? { text: opts.xTitle } : undefined },
      yaxis: { title: opts.yTitle ? { text: opts.yTitle } : undefined, range: opts.yRange },
      margin: { t: opts.title ? 70 : 30 },
    },
  };
}

/** One image of 8-bit pixels (row-major, 1 or 3 channels) as a PNG data URI. */
export function pixelsDataUri(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): string {
  return `data:image/png;base64,${encodePng(pixels, width, height, channels).toString('base64')}`;
}

export interface RawImages {
  pixels: Uint8Array;
  n: number;
  height: number;
  width: number;
  channels: 1 | 3;
}

/** A grid of raw images (e.g. a dataset's RawBatch) with one title per image. */
export function sampleGridFigure(images: RawImages, titles: string[], cols: number, opts: { title?: string; panelPx?: number } = {}): PlotlyFigure {
  const { n, height, width, channels } = images;
  const size = height * width * channels;
  const panels: ImagePanel[] = [];
  for (let i = 0; i < n; i++) {
    panels.push({ title: titles[i] ?? '', src: pixelsDataUri(images.pixels.subarray(i * size, (i + 1) * size), width, height, channels) });
  }
  // imageGridFigure draws square panels of `size` pixels; datasets here are square.
  return imageGridFigure(panels, cols, { title: opts.title, size: Math.max(height, width), panelPx: opts.panelPx ?? 110 });
}
