import * as fs from 'node:fs';
import * as path from 'node:path';
import { JsonlLog, type EpochRecord, type StepRecord } from '../train/log';
import type { PlotlyFigure } from './display';

/**
 * Figure 1 of the supplementary (training loss on top, kNN accuracy below, one column per
 * framework, baseline blue and MixMask red) built from run directories: it reads
 * `log.jsonl` / `config.json` as `npm run train` and the notebooks write them, and knows
 * nothing of how they were trained.
 */
export interface RunLog {
  runDir: string;
  /** config.json of the run (null if absent). */
  config: Record<string, unknown> | null;
  steps: StepRecord[];
  epochs: EpochRecord[];
}

/** Reads a run directory's log; a torn last line (run killed mid-write) is ignored. */
export function readRunLog(runDir: string): RunLog {
  const logFile = path.join(runDir, 'log.jsonl');
  if (!fs.existsSync(logFile)) throw new Error(`${runDir}: no log.jsonl (is this a run directory written by npm run train?)`);
  const cfgFile = path.join(runDir, 'config.json');
  const config = fs.existsSync(cfgFile) ? (JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>) : null;
  const records = JsonlLog.read(logFile);
  const steps = records.filter((r): r is StepRecord => r.type === 'step');
  const epochs = records.filter((r): r is EpochRecord => r.type === 'epoch');
  return { runDir, config, steps, epochs };
}

/** Colours of the view methods: the paper's blue baseline and red MixMask, then the others. */
export const METHOD_COLORS: Record<string, string> = {
  none: '#1f77b4',
  mixmask: '#d62728',
  unmix: '#2ca02c',
  both: '#9467bd',
  erase: '#7f7f7f',
};

export const METHOD_LABELS: Record<string, string> = {
  none: 'baseline',
  mixmask: 'MixMask',
  unmix: 'Un-Mix',
  both: 'Un-Mix + MixMask',
  erase: 'erase (MSCN-style)',
};

export interface CurveRun {
  /** Column of the figure, e.g. 'MoCo'. */
  group: string;
  /** View method ('none', 'mixmask', …): picks colour and legend entry. */
  method: string;
  log: RunLog;
  /** Legend label (default METHOD_LABELS[method]). */
  label?: string;
  color?: string;
}

export interface CurveOptions {
  title?: string;
  /** Column order (default: order of first appearance). */
  groups?: string[];
  /**
   * 'epoch': mean loss per epoch; 'step': every step, x in fractional epochs; 'auto' (default):
   * steps when the runs have fewer than 10 epochs (short runs would show 2 points otherwise).
   */
  loss?: 'auto' | 'epoch' | 'step';
  height?: number;
  /**
   * Runs of the same group and method (e.g. seeds) drawn as one mean curve with a shaded
   * min–max band (seedBand) instead of one curve each. Default false.
   */
  bands?: boolean;
}

/** One curve over several runs: at every x that all of them reached, the mean, min and max. */
export interface SeedBand {
  x: number[];
  mean: number[];
  min: number[];
  max: number[];
  /** How many curves went into it. */
  n: number;
}

/** Mean and min–max of curves given as (x, y) points, over the x values present in every curve (ascending). */
export function seedBand(curves: ReadonlyArray<{ x: readonly number[]; y: readonly number[] }>): SeedBand {
  if (!curves.length) throw new Error('seedBand: no curves');
  const maps = curves.map((c) => {
    if (c.x.length !== c.y.length) throw new Error(`seedBand: a curve has ${c.x.length} x values and ${c.y.length} y values`);
    return new Map(c.x.map((x, i) => [x, c.y[i]]));
  });
  const xs = [...maps[0].keys()].filter((x) => maps.every((m) => m.has(x))).sort((a, b) => a - b);
  const at = (x: number) => maps.map((m) => m.get(x)!);
  return {
    x: xs,
    mean: xs.map((x) => at(x).reduce((s, v) => s + v, 0) / maps.length),
    min: xs.map((x) => Math.min(...at(x))),
    max: xs.map((x) => Math.max(...at(x))),
    n: maps.length,
  };
}

/** '#rrggbb' as an rgba() string with the given opacity (for bands). */
function translucent(hex: string, alpha: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  return m ? `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${alpha})` : hex;
}

/** x of each step record in (fractional) epochs: epoch + (index within the epoch + 1) / steps of that epoch. */
function stepX(steps: StepRecord[]): number[] {
  const perEpoch = new Map<number, number>();
  for (const s of steps) perEpoch.set(s.epoch, (perEpoch.get(s.epoch) ?? 0) + 1);
  const seen = new Map<number, number>();
  return steps.map((s) => {
    const k = (seen.get(s.epoch) ?? 0) + 1;
    seen.set(s.epoch, k);
    return s.epoch + k / perEpoch.get(s.epoch)!;
  });
}

/** Figure 1: loss (top row) and kNN top-1 (bottom row) per group, one curve per run (or per method, with `bands`). */
export function trainingCurvesFigure(runs: CurveRun[], opts: CurveOptions = {}): PlotlyFigure {
  const groups = opts.groups ?? [...new Set(runs.map((r) => r.group))];
  const n = Math.max(1, groups.length);
  const gap = 0.04;
  const w = (1 - gap * (n - 1)) / n;
  const maxEpochs = Math.max(0, ...runs.map((r) => r.log.epochs.length));
  const useSteps = opts.loss === 'step' || ((opts.loss ?? 'auto') === 'auto' && maxEpochs < 10);
  const data: Array<Record<string, unknown>> = [];
  const layout: Record<string, unknown> = {
    title: opts.title ? { text: opts.title } : undefined,
    height: opts.height ?? 560,
    margin: { l: 60, r: 20, t: opts.title ? 90 : 60, b: 60 },
    legend: { orientation: 'h', x: 0.5, xanchor: 'center', y: -0.12 },
    annotations: [] as unknown[],
  };
  const legendShown = new Set<string>();
  groups.forEach((g, c) => {
    const top = 2 * c + 1;
    const bottom = 2 * c + 2;
    const ax = (k: number) => (k === 1 ? '' : String(k));
    const x0 = c * (w + gap);
    layout[`xaxis${ax(top)}`] = { domain: [x0, x0 + w], anchor: `y${ax(top)}`, showticklabels: false };
    layout[`yaxis${ax(top)}`] = { domain: [0.55, 1], anchor: `x${ax(top)}`, title: c === 0 ? { text: 'training loss' } : undefined };
    layout[`xaxis${ax(bottom)}`] = { domain: [x0, x0 + w], anchor: `y${ax(bottom)}`, title: { text: 'epoch' }, matches: `x${ax(top)}` };
    layout[`yaxis${ax(bottom)}`] = { domain: [0, 0.45], anchor: `x${ax(bottom)}`, title: c === 0 ? { text: 'kNN top-1 (%)' } : undefined };
    (layout.annotations as unknown[]).push({
      text: `<b>${g}</b>`, x: x0 + w / 2, y: 1.0, xref: 'paper', yref: 'paper', xanchor: 'center', yanchor: 'bottom', showarrow: false, font: { size: 14 },
    });
    if (opts.bands) {
      const inGroup = runs.filter((run) => run.group === g);
      for (const method of [...new Set(inGroup.map((r) => r.method))]) {
        const same = inGroup.filter((r) => r.method === method);
        const first = same[0];
        const color = first.color ?? METHOD_COLORS[method] ?? '#17becf';
        const label = `${first.label ?? METHOD_LABELS[method] ?? method}${same.length > 1 ? `, mean and min–max of ${same.length} runs` : ''}`;
        const showlegend = !legendShown.has(label);
        legendShown.add(label);
        const loss = seedBand(same.map((r) => (useSteps
          ? { x: stepX(r.log.steps), y: r.log.steps.map((s) => s.loss) }
          : { x: r.log.epochs.map((e) => e.epoch + 1), y: r.log.epochs.map((e) => e.loss) })));
        const knn = seedBand(same.map((r) => {
          const k = r.log.epochs.filter((e) => typeof e.knnTop1 === 'number');
          return { x: k.map((e) => e.epoch + 1), y: k.map((e) => e.knnTop1!) };
        }));
        for (const [b, row, mode] of [[loss, top, 'lines'], [knn, bottom, 'lines+markers']] as const) {
          const axes = { xaxis: `x${ax(row)}`, yaxis: `y${ax(row)}` };
          if (same.length > 1) {
            data.push({
              type: 'scatter', mode: 'lines', name: `${label} (band)`, legendgroup: label, showlegend: false, hoverinfo: 'skip',
              x: [...b.x, ...[...b.x].reverse()], y: [...b.max, ...[...b.min].reverse()],
              fill: 'toself', fillcolor: translucent(color, 0.2), line: { width: 0, color }, ...axes,
            });
          }
          data.push({
            type: 'scatter', mode, name: label, legendgroup: label, showlegend: row === top && showlegend,
            line: { color, width: 2 }, marker: { color, size: 5 }, x: b.x, y: b.mean, ...axes,
          });
        }
      }
      return;
    }
    for (const r of runs.filter((run) => run.group === g)) {
      const label = r.label ?? METHOD_LABELS[r.method] ?? r.method;
      const color = r.color ?? METHOD_COLORS[r.method] ?? '#17becf';
      const showlegend = !legendShown.has(label);
      legendShown.add(label);
      const common = { type: 'scatter', name: label, legendgroup: label, line: { color, width: 2 }, marker: { color, size: 5 } };
      if (useSteps) {
        data.push({ ...common, mode: 'lines', x: stepX(r.log.steps), y: r.log.steps.map((s) => s.loss), xaxis: `x${ax(top)}`, yaxis: `y${ax(top)}`, showlegend });
      } else {
        data.push({ ...common, mode: 'lines', x: r.log.epochs.map((e) => e.epoch + 1), y: r.log.epochs.map((e) => e.loss), xaxis: `x${ax(top)}`, yaxis: `y${ax(top)}`, showlegend });
      }
      const knn = r.log.epochs.filter((e) => typeof e.knnTop1 === 'number');
      data.push({
        ...common, mode: 'lines+markers', x: knn.map((e) => e.epoch + 1), y: knn.map((e) => e.knnTop1), xaxis: `x${ax(bottom)}`, yaxis: `y${ax(bottom)}`, showlegend: false,
      });
    }
  });
  return { data, layout };
}

/** The last kNN top-1 of a run (null if the monitor never ran). */
export function finalKnn(log: RunLog): number | null {
  const knn = log.epochs.filter((e) => typeof e.knnTop1 === 'number');
  return knn.length ? knn[knn.length - 1].knnTop1! : null;
}

/** The numbers a table row shows for a run: final loss and kNN, mean realised λ and throughput. */
export interface RunSummary {
  epochs: number;
  steps: number;
  /** Mean loss of the last epoch (null before the first epoch ends). */
  finalLoss: number | null;
  finalKnn: number | null;
  /** Mean realised λ over the steps that had a mixed view (null: none had). */
  meanLambda: number | null;
  /** Mean images per second over the steps that logged it (null: none did). */
  imgPerSec: number | null;
}

export function runSummary(log: RunLog): RunSummary {
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
  const last = log.epochs[log.epochs.length - 1];
  return {
    epochs: log.epochs.length,
    steps: log.steps.length,
    finalLoss: last ? last.loss : null,
    finalKnn: finalKnn(log),
    meanLambda: mean(log.steps.map((s) => s.lambda).filter((l): l is number => typeof l === 'number')),
    imgPerSec: mean(log.steps.map((s) => s.imgPerSec).filter((x): x is number => typeof x === 'number')),
  };
}

const DASHES = ['solid', 'dot', 'dash', 'dashdot', 'longdash', 'longdashdot'];

/**
 * The collapse indicator over training: the std of the normalised embeddings at every step, one
 * line per run, coloured by view method and dashed by group (framework).
 */
export function embeddingStdFigure(runs: CurveRun[], opts: { title?: string; height?: number; groups?: string[] } = {}): PlotlyFigure {
  const groups = opts.groups ?? [...new Set(runs.map((r) => r.group))];
  return {
    data: runs.map((r) => ({
      type: 'scatter', mode: 'lines', name: `${r.group} ${r.label ?? METHOD_LABELS[r.method] ?? r.method}`,
      x: r.log.steps.map((s) => s.step), y: r.log.steps.map((s) => s.embeddingStd ?? null),
      line: { color: r.color ?? METHOD_COLORS[r.method] ?? '#17becf', dash: DASHES[Math.max(0, groups.indexOf(r.group)) % DASHES.length] },
    })),
    layout: {
      title: opts.title ? { text: opts.title } : undefined,
      height: opts.height ?? 420,
      xaxis: { title: { text: 'step' } },
      yaxis: { title: { text: 'embedding std' }, rangemode: 'tozero' },
    },
  };
}
