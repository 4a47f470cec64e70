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

/** Figure 1: loss (top row) and kNN top-1 (bottom row) per group, one curve per run. */
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
