import * as path from 'node:path';
import { loadSplits } from '../data/named';
import { runNormalization } from '../data/recipes';
import { validationSplit } from '../data/split';
import { SubsetDataset } from '../data/subset';
import type { Dataset } from '../data/types';
import { knnMonitor } from '../eval/knn';
import { randomIndices } from '../eval/subsets';
import type { RunConfig } from '../train/config';
import type { ProgressSink } from '../train/progress';
import { type TrainSummary, Trainer } from '../train/trainer';

/**
 * One pretraining run as the command line and the notebooks start it: the dataset named in the
 * config, the kNN monitor of Figure 1 (runDatasets), and the trainer writing into `runDir`.
 */
export interface StartRunOptions {
  config: RunConfig;
  runDir: string;
  resume?: boolean;
  progress?: ProgressSink;
  signal?: AbortSignal;
  maxSteps?: number;
}

export function defaultRunDir(c: RunConfig, root = 'runs'): string {
  const mask = c.view.method === 'mixmask' || c.view.method === 'both' || c.view.method === 'erase' ? `-${c.view.maskType}${c.view.gridSize}` : '';
  const asym = c.view.asymmetric === false ? '-noasym' : '';
  // Runs with a held-out validation split train on other images and monitor on other ones than
  // runs without (the paper profile, runs stored before the split existed): another folder.
  const val = c.validation ? '-val' : '';
  return path.join(root, `${c.dataset}-${c.profile}`, `${c.framework}-${c.view.method}${mask}${asym}${val}-s${c.seed}`);
}

/** What a run reads: the images pretraining draws from, and the kNN monitor's bank and queries. */
export interface RunDatasets {
  /** The trainer takes config.trainSubset images of this. */
  train: Dataset;
  bank: Dataset;
  query: Dataset;
}

/**
 * With config.validation set: pretraining and the monitor's bank use the training split less the
 * validation images, the monitor's queries come from the validation images, and the test split
 * is not read. Without: the whole train split, and queries from the test split. Bank and query
 * subsets are seeded by the run's seed, as before the split existed.
 */
export function runDatasets(c: RunConfig, splits: { train: Dataset; test: Dataset }): RunDatasets {
  const held = c.validation ? validationSplit(splits.train, c.validation) : null;
  const train = held ? held.rest : splits.train;
  const queries = held ? held.validation : splits.test;
  const bank = c.knn.bankSubset ? new SubsetDataset(train, randomIndices(train.size, c.knn.bankSubset, c.seed + 11)) : train;
  const query = c.knn.querySubset ? new SubsetDataset(queries, randomIndices(queries.size, c.knn.querySubset, c.seed + 12)) : queries;
  return { train, bank, query };
}

export async function startRun(o: StartRunOptions): Promise<TrainSummary> {
  const c = o.config;
  const { train, bank, query } = runDatasets(c, await loadSplits(c.dataset));
  const normalize = runNormalization(c);
  const trainer = new Trainer({
    config: c,
    runDir: o.runDir,
    train,
    resume: o.resume,
    progress: o.progress,
    signal: o.signal,
    maxSteps: o.maxSteps,
    monitor: async (backbone) => {
      const r = await knnMonitor(backbone, { bank, query, k: c.knn.k, t: c.knn.t, transform: { size: c.imageSize, normalize } });
      return { top1: r.top1, top5: r.top5 };
    },
  });
  try {
    return await trainer.run();
  } finally {
    trainer.dispose();
  }
}
