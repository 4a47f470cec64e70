import * as fs from 'node:fs';
import type { DatasetName } from '../data/named';
import type { RecipeName } from '../data/recipes';
import type { FrameworkName, HeadConfig } from '../frameworks';
import type { ViewSpec } from '../masks/views';
import type { ResNetConfig } from '../models/resnet';
import type { OptimizerConfig, ScheduleConfig } from '../optim';

/** The budget a configuration was derived for (lib/presets makes one of each). */
export type Profile = 'paper' | 'cpu' | 'smoke';

/**
 * Everything a pretraining run depends on, in one object: the trainer reads nothing else, writes
 * it to config.json and stores it in every checkpoint, and a resumed run must ask for the same.
 * lib/presets derives it from the paper's tables.
 */
export interface RunConfig {
  framework: FrameworkName;
  dataset: DatasetName;
  profile: Profile;
  seed: number;
  backbone: Required<ResNetConfig>;
  /** Side of the training views in pixels. */
  imageSize: number;
  recipe: RecipeName;
  /** Lower bound of the crop scale when the dataset needs a milder one than the recipe (absent: the recipe's). */
  minCropScale?: number;
  epochs: number;
  batchSize: number;
  /** Train on the first N images of a seeded permutation of the train split (null: all). */
  trainSubset: number | null;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  heads: HeadConfig;
  view: ViewSpec;
  /** kNN monitor: every N epochs (0: never), k, temperature, optional bank/query subsets. */
  knn: { every: number; k: number; t: number; bankSubset: number | null; querySubset: number | null };
  /**
   * The validation split held out from the training split (lib/data/split): `images` samples,
   * class-balanced, drawn with its own `seed` (a preset constant, the same for every run seed).
   * Pretraining and the kNN monitor's bank use the rest; the monitor queries the validation
   * images, so the test split is left for the final evaluation. null: nothing held out and the
   * monitor queries the test split (the paper's protocol, and every run stored before this field).
   */
  validation: { images: number; seed: number } | null;
  /** Where the values come from, for the record. */
  source: string;
}

/**
 * A run config as a checkpoint or config.json stored it, in today's field names. `where` names
 * the file for the error when it is no config at all.
 */
export function storedRunConfig(raw: unknown, where: string): RunConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: the run config is not an object`);
  let c = raw as RunConfig;
  const heads = c.heads as unknown as Record<string, unknown> | undefined;
  // Runs saved before the target networks' EMA coefficient was named `targetMomentum` stored it
  // as `heads.momentum` (reports/fashion-mnist-cpu): renamed in place, keeping the key order.
  if (heads && typeof heads === 'object' && !('targetMomentum' in heads) && 'momentum' in heads) {
    const renamed = Object.fromEntries(Object.entries(heads).map(([k, v]) => [k === 'momentum' ? 'targetMomentum' : k, v]));
    c = { ...c, heads: renamed as unknown as HeadConfig };
  }
  // Runs saved before the validation split existed held nothing out and monitored on test:
  // validation null, inserted after `knn` where pretrainConfig puts it (configs compare as JSON).
  if (!('validation' in c)) {
    const entries = Object.entries(c);
    const at = entries.findIndex(([k]) => k === 'knn');
    entries.splice(at < 0 ? entries.length : at + 1, 0, ['validation', null]);
    c = Object.fromEntries(entries) as unknown as RunConfig;
  }
  return c;
}

/** A run directory's config.json (see storedRunConfig). */
export function readRunConfig(file: string): RunConfig {
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return storedRunConfig(raw, file);
}
