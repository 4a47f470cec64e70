import { Rng } from '../util/rng';
import { SubsetDataset } from './subset';
import type { Dataset } from './types';

/**
 * Class-balanced draws from a dataset: the held-out validation split of the short profiles and
 * the semi-supervised label subsets (lib/eval/subsets) both take the same number of samples from
 * every class, each class by its own seeded permutation, so one class's draw does not depend on
 * the others.
 */
export interface ClassBalancedDraw {
  /** Selected indices, ascending. */
  indices: Int32Array;
  /** Samples each class had available (a class smaller than perClass gives all it has). */
  classCounts: number[];
}

/** min(perClass, class size) samples of every class of `ds`, drawn with `seed`. */
export function classBalancedDraw(ds: Dataset, perClass: number, seed: number): ClassBalancedDraw {
  if (!Number.isInteger(perClass) || perClass < 1) throw new Error(`classBalancedDraw: perClass must be an integer ≥ 1, got ${perClass}`);
  const byClass: number[][] = Array.from({ length: ds.numClasses }, () => []);
  for (let i = 0; i < ds.size; i++) {
    const y = ds.label(i);
    if (!(y >= 0 && y < ds.numClasses)) throw new Error(`${ds.name}: sample ${i} has label ${y}, outside [0, ${ds.numClasses})`);
    byClass[y].push(i);
  }
  const rng = new Rng(seed);
  const chosen: number[] = [];
  for (const members of byClass) {
    const r = rng.fork();
    const take = Math.min(perClass, members.length);
    const perm = r.permutation(members.length);
    for (let j = 0; j < take; j++) chosen.push(members[perm[j]]);
  }
  chosen.sort((a, b) => a - b);
  return { indices: Int32Array.from(chosen), classCounts: byClass.map((c) => c.length) };
}

/**
 * The validation split held out from a training split (RunConfig.validation): `images` samples,
 * images / numClasses of every class, drawn with `seed` — a constant of the preset, not the run's
 * seed, so every run and every seed holds out the same images. The rest is what pretraining and
 * the kNN monitor's bank may use; the test split stays for the final evaluation.
 */
export interface ValidationSplitSpec {
  images: number;
  seed: number;
}

export interface ValidationSplit {
  /** The held-out images (the kNN monitor's queries, tuning decisions). */
  validation: SubsetDataset;
  /** Every other image of the training split, in the original order. */
  rest: SubsetDataset;
}

export function validationSplit(train: Dataset, spec: ValidationSplitSpec): ValidationSplit {
  const { images, seed } = spec;
  if (!Number.isInteger(images) || images < train.numClasses || images % train.numClasses !== 0) {
    throw new Error(`validation.images must be a positive multiple of ${train.numClasses} (the classes of ${train.name}), got ${images}`);
  }
  if (images >= train.size) throw new Error(`validation.images (${images}) must be fewer than the ${train.size} images of ${train.name}`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`validation.seed must be an integer ≥ 0, got ${seed}`);
  const perClass = images / train.numClasses;
  const draw = classBalancedDraw(train, perClass, seed);
  const short = draw.classCounts.findIndex((n) => n < perClass);
  if (short >= 0) throw new Error(`validation.images (${images}) needs ${perClass} images of every class; class ${short} of ${train.name} has ${draw.classCounts[short]}`);
  const held = new Uint8Array(train.size);
  for (const i of draw.indices) held[i] = 1;
  const rest: number[] = [];
  for (let i = 0; i < train.size; i++) if (!held[i]) rest.push(i);
  return {
    validation: new SubsetDataset(train, draw.indices, `${train.name}-validation`),
    rest: new SubsetDataset(train, rest, `${train.name}-without-validation`),
  };
}
