import { classBalancedDraw } from '../data/split';
import type { Dataset } from '../data/types';
import { Rng } from '../util/rng';
import { checkInt, checkNumber } from './common';

/**
 * Class-balanced label subsets for the semi-supervised protocol (1 % / 10 % of the labels, as
 * the SimCLR / MoCo semi-supervised splits): the same number of samples from every class,
 * drawn from the training split only, reproducible from a seed.
 */
export interface LabelSubsetOptions {
  /** Share of the training set to keep, in (0, 1] (0.01 and 0.1 in Table 3). */
  fraction: number;
  /** Seed of the draw (default 0): fixed seeds make the subsets identical across runs and methods. */
  seed?: number;
}

export interface LabelSubset {
  /** Selected training indices, ascending. */
  indices: Int32Array;
  /** Samples taken per class. */
  perClass: number;
  /** Samples each class had available (a class smaller than perClass gives all it has). */
  classCounts: number[];
}

/**
 * round(fraction · size / numClasses) samples (at least 1) of every class, each class drawn by
 * its own seeded permutation, so one class's draw does not depend on the others.
 */
export function labelSubset(train: Dataset, opts: LabelSubsetOptions): LabelSubset {
  const { fraction } = opts;
  checkNumber('fraction', fraction, { positive: true });
  if (fraction > 1) throw new Error(`option fraction must be in (0, 1], got ${fraction}`);
  const seed = opts.seed ?? 0;
  checkInt('seed', seed, 0);
  const perClass = fraction === 1 ? train.size : Math.max(1, Math.round((fraction * train.size) / train.numClasses));
  const draw = classBalancedDraw(train, perClass, seed);
  return { indices: draw.indices, perClass: fraction === 1 ? Math.max(...draw.classCounts) : perClass, classCounts: draw.classCounts };
}

/** `count` distinct indices of [0, n) drawn with a seed, ascending (for --limit-train style quick runs). */
export function randomIndices(n: number, count: number, seed = 0): Int32Array {
  checkInt('count', count, 1);
  if (count >= n) return Int32Array.from({ length: n }, (_, i) => i);
  return new Rng(seed).permutation(n).slice(0, count).sort();
}

