import type { NormalizeSpec } from '../data/augment';
import type { Dataset } from '../data/types';
import { InterruptedError } from '../train/interrupt';

/**
 * Shared small pieces of the evaluators: progress reporting, option checks, the evaluation
 * transform and a top-k accuracy counter.
 */

/** One progress event of a long evaluation; `done` of `total` units of the current phase. */
export interface ProgressInfo {
  /** Which evaluator: 'features', 'knn', 'linear', 'finetune'. */
  task: string;
  /** What it is doing now, e.g. 'bank features', 'query features', 'neighbours', 'train', 'test'. */
  phase: string;
  done: number;
  total: number;
  /** 1-based epoch of training phases. */
  epoch?: number;
  epochs?: number;
  /** Mean training loss of the epoch so far. */
  loss?: number;
}

export type ProgressFn = (info: ProgressInfo) => void;

/**
 * Stops an evaluation at a batch or epoch boundary once `signal` is aborted (Kernel → Interrupt
 * through train/interrupt's `interruptible`, or any AbortController), with one line saying where.
 */
export function stopIfAborted(signal: AbortSignal | undefined, task: string, where: string, note = 'nothing of it is kept: re-run the cell to start it again'): void {
  if (signal?.aborted) throw new InterruptedError(`${task} interrupted ${where}; ${note}`);
}

/**
 * How images become backbone input at evaluation time (resize/centre-crop to `size`, then
 * normalise): the same shape as `Recipe`'s fields, so a trainer passes its recipe directly.
 */
export interface EvalTransform {
  size: number;
  normalize: NormalizeSpec | null;
}

/** The transform used when none is given: the dataset's own size, no normalisation. */
export function defaultTransform(ds: Dataset, t?: Partial<EvalTransform>): EvalTransform {
  const size = t?.size ?? Math.min(ds.height, ds.width);
  checkInt('transform.size', size, 1);
  return { size, normalize: t?.normalize ?? null };
}

export function checkInt(name: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new Error(`option ${name} must be an integer ≥ ${min}, got ${String(v)}`);
  }
}

export function checkNumber(name: string, v: unknown, opts: { min?: number; positive?: boolean } = {}): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`option ${name} must be a finite number, got ${String(v)}`);
  if (opts.positive && !(v > 0)) throw new Error(`option ${name} must be > 0, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new Error(`option ${name} must be ≥ ${opts.min}, got ${v}`);
}

/**
 * Milestones for a step schedule: given ones are checked; otherwise the Table 2/3 milestones
 * are scaled to the number of epochs (e.g. [60, 80] of 100 → [6, 8] of 10).
 */
export function resolveMilestones(name: string, given: readonly number[] | undefined, epochs: number, reference: readonly number[], refEpochs: number): number[] {
  if (given === undefined) {
    if (epochs === refEpochs) return [...reference];
    const scaled = reference.map((m) => Math.round((m * epochs) / refEpochs)).filter((m) => m > 0 && m < epochs);
    return [...new Set(scaled)];
  }
  if (!Array.isArray(given)) throw new Error(`option ${name} must be an array of epochs, got ${String(given)}`);
  let prev = 0;
  for (const m of given) {
    if (!Number.isInteger(m) || m <= prev) throw new Error(`option ${name} must be increasing positive integers, got [${given.join(', ')}]`);
    prev = m;
  }
  return [...given];
}

/**
 * Rank of class `label` among the `numClasses` scores starting at `offset`: the classes scoring
 * higher, plus those scoring the same with a smaller index (what a stable descending sort
 * gives). The label is in the top k exactly when its rank is < k.
 */
export function labelRank(scores: ArrayLike<number>, offset: number, numClasses: number, label: number): number {
  const sy = scores[offset + label];
  let rank = 0;
  for (let c = 0; c < numClasses; c++) {
    const s = scores[offset + c];
    if (s > sy || (s === sy && c < label)) rank++;
  }
  return rank;
}

/** Counts how many rows have their label at rank < k (labelRank) for each k. */
export function countTopK(scores: Float32Array | Float64Array, numClasses: number, labels: ArrayLike<number>, ks: readonly number[]): number[] {
  const n = labels.length;
  if (scores.length !== n * numClasses) throw new Error(`countTopK: ${scores.length} scores for ${n} rows × ${numClasses} classes`);
  const counts = ks.map(() => 0);
  for (let i = 0; i < n; i++) {
    const rank = labelRank(scores, i * numClasses, numClasses, labels[i]);
    for (let j = 0; j < ks.length; j++) if (rank < ks[j]) counts[j]++;
  }
  return counts;
}

export function percent(count: number, n: number): number {
  return n === 0 ? 0 : (100 * count) / n;
}

/** Largest value (−Infinity when empty); a loop, since spreading 50k values into Math.max can overflow the stack. */
export function maxOf(a: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}
