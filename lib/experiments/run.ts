import * as path from 'node:path';
import { loadSplits } from '../data/named';
import { runNormalization } from '../data/recipes';
import { SubsetDataset } from '../data/subset';
import { knnMonitor } from '../eval/knn';
import { randomIndices } from '../eval/subsets';
import type { RunConfig } from '../train/config';
import type { ProgressSink } from '../train/progress';
import { type TrainSummary, Trainer } from '../train/trainer';

/**
 * One pretraining run as the command line and the notebooks start it: the dataset named in the
 * config, the kNN monitor of Figure 1 on (subsets of) its train and test splits, and the
 * trainer writing into `runDir`.
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
  return path.join(root, `${c.dataset}-${c.profile}`, `${c.framework}-${c.view.method}${mask}${asym}-s${c.seed}`);
}

export async function startRun(o: StartRunOptions): Promise<TrainSummary> {
  const c = o.config;
  const { train, test } = await loadSplits(c.dataset);
  const normalize = runNormalization(c);
  const bank = c.knn.bankSubset ? new SubsetDataset(train, randomIndices(train.size, c.knn.bankSubset, c.seed + 11)) : train;
  const query = c.knn.querySubset ? new SubsetDataset(test, randomIndices(test.size, c.knn.querySubset, c.seed + 12)) : test;
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
