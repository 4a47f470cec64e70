import type { PlotlyFigure } from './display';
import { METHOD_COLORS } from './runs';

/**
 * The ablation figure (notebook 06): one bar panel per varied axis (mask type, grid size, …),
 * side by side, each bar one setting of that axis. The paper's default setting is drawn red in
 * every panel it appears in, the no-mixing baseline blue, the other settings grey.
 */
export interface AblationBar {
  /** The varied axis: one panel per distinct axis, in order of first appearance. */
  axis: string;
  /** The setting on that axis (the bar's category). */
  label: string;
  value: number | null;
  /** The paper's default setting (red). */
  isDefault?: boolean;
  /** The baseline without a mixed view (blue, unless it is also the default). */
  isBaseline?: boolean;
}

export const ABLATION_COLORS = { default: METHOD_COLORS.mixmask, baseline: METHOD_COLORS.none, other: '#9aa5b1' } as const;

export function ablationBarsFigure(bars: AblationBar[], opts: { title?: string; yTitle?: string; height?: number; gap?: number } = {}): PlotlyFigure {
  const axes = [...new Set(bars.map((b) => b.axis))];
  const gap = opts.gap ?? 0.05;
  const w = (1 - gap * (axes.length - 1)) / Math.max(1, axes.length);
  const data: Array<Record<string, unknown>> = [];
  const annotations: unknown[] = [];
  const layout: Record<string, unknown> = {
    title: opts.title ? { text: opts.title } : undefined,
    height: opts.height ?? 420,
    showlegend: false,
    margin: { t: 100 },
    annotations,
  };
  axes.forEach((axis, i) => {
    const rows = bars.filter((b) => b.axis === axis);
    const k = i === 0 ? '' : String(i + 1);
    const x0 = i * (w + gap);
    data.push({
      type: 'bar', name: axis, x: rows.map((b) => b.label), y: rows.map((b) => b.value), xaxis: `x${k}`, yaxis: `y${k}`,
      marker: { color: rows.map((b) => ABLATION_COLORS[b.isDefault ? 'default' : b.isBaseline ? 'baseline' : 'other']) },
      text: rows.map((b) => (b.value === null ? '' : b.value.toFixed(1))), textposition: 'outside', cliponaxis: false,
    });
    layout[`xaxis${k}`] = { domain: [x0, x0 + w], anchor: `y${k}`, type: 'category' };
    layout[`yaxis${k}`] = { anchor: `x${k}`, title: i === 0 && opts.yTitle ? { text: opts.yTitle } : undefined, rangemode: 'tozero' };
    annotations.push({ text: `<b>${axis}</b>`, x: x0 + w / 2, y: 1.08, xref: 'paper', yref: 'paper', showarrow: false, xanchor: 'center' });
  });
  return { data, layout };
}
