import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../backend';
import { DataLoader, rawToBatch } from '../data/pipeline';
import { makeRecipe, twoViews } from '../data/recipes';
import { SubsetDataset } from '../data/subset';
import type { Dataset } from '../data/types';
import { Framework, makeFramework } from '../frameworks';
import { disposeViews, makeViews } from '../masks/views';
import type { ResNet } from '../models/resnet';
import { type RunConfig, storedRunConfig } from './config';
import { Rng } from '../util/rng';
import { assignFromCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint';
import { type EpochRecord, JsonlLog } from './log';
import { Optimizer, fixedRateParams, learningRate, learningRates, makeOptimizer } from '../optim';
import { ProgressSink, defaultProgress } from './progress';
import { RunLock } from './lock';

/**
 * The training loop shared by every framework and view method:
 *   data → two augmented views → extra (mixed) views → framework loss and gradients →
 *   optimiser → momentum/queue updates → logs, kNN monitor, checkpoints.
 * Every random decision is drawn from a generator seeded by (seed, epoch, step), so a run
 * resumed from a checkpoint continues exactly as an uninterrupted one.
 *
 * Files in `runDir`: config.json, log.jsonl (one line per step and per epoch) and
 * checkpoint.safetensors (weights, optimiser slots, queue, position; written atomically).
 */
export interface MonitorResult {
  top1: number;
  top5?: number;
}

export interface TrainerOptions {
  config: RunConfig;
  runDir: string;
  /** The training split (the trainer takes config.trainSubset images of it). */
  train: Dataset;
  /** Called every config.knn.every epochs with the online backbone (e.g. the kNN monitor). */
  monitor?: (backbone: ResNet, epoch: number) => Promise<MonitorResult>;
  /** Continue from runDir/checkpoint.safetensors. */
  resume?: boolean;
  progress?: ProgressSink;
  /** Stop after the current step, saving a checkpoint to resume from. */
  signal?: AbortSignal;
  /** Stop (with a checkpoint) after this many steps in this call: for tests and time-boxed runs. */
  maxSteps?: number;
  /** Test hook: runs before each step's optimiser update. */
  beforeUpdate?: (step: number, result: { loss: number }) => void;
}

export interface TrainSummary {
  status: 'completed' | 'stopped';
  epochsDone: number;
  step: number;
  lastLoss: number;
  seconds: number;
  checkpoint: string;
}

export class NonFiniteLossError extends Error {}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

/**
 * The seed of one random stream of a run: (seed, epoch, step, stream) hashed to 32 bits. Stream 0
 * picks the training subset (epoch = step = −1), 1 the epoch order (step = −1), 2 a step's draws.
 * Exported for the PyTorch engine's tests, which check that its port draws the same.
 */
export function streamSeed(seed: number, epoch: number, step: number, stream: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [epoch, step, stream]) {
    h = Math.imul(h ^ (v + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return h;
}

/**
 * What a run trains, in words, for progress lines and logs: framework, view method and the
 * settings that tell runs of one ablation apart, e.g. `moco-v2 + mixmask (block, g = 8, r = 0.5, asymmetric off)`.
 */
export function runTitle(c: RunConfig): string {
  const v = c.view;
  const parts: string[] = [];
  if (v.method === 'mixmask' || v.method === 'both' || v.method === 'erase') {
    parts.push(v.maskType ?? 'block', `g = ${v.gridSize ?? 8}`, `r = ${v.ratio ?? 0.5}`);
  }
  if (v.asymmetric === false) parts.push('asymmetric off');
  return `${c.framework} + ${v.method}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

export class Trainer {
  readonly config: RunConfig;
  readonly framework: Framework;
  readonly optimizer: Optimizer;
  readonly log: JsonlLog;
  private readonly trainSet: Dataset;
  private readonly recipe: ReturnType<typeof makeRecipe>;
  private epoch = 0;
  private stepInEpoch = 0;
  private globalStep = 0;
  private readonly stepsPerEpoch: number;
  /** Parameters that keep the base learning rate (schedule.fixedLrModules). */
  private readonly fixedRate: Set<string>;
  /** Running sums of this epoch's step metrics (rebuilt from the log on resume). */
  private epochSums = newSums();

  constructor(private readonly opts: TrainerOptions) {
    this.config = opts.config;
    const c = this.config;
    this.recipe = makeRecipe(c.recipe, { size: c.imageSize, minCropScale: c.minCropScale });
    const n = c.trainSubset === null ? opts.train.size : Math.min(c.trainSubset, opts.train.size);
    const indices = new Rng(streamSeed(c.seed, -1, -1, 0)).permutation(opts.train.size).slice(0, n);
    this.trainSet = n === opts.train.size ? opts.train : new SubsetDataset(opts.train, indices, `${opts.train.name}[${n}]`);
    this.stepsPerEpoch = Math.floor(n / c.batchSize);
    if (this.stepsPerEpoch < 1) throw new Error(`trainer: ${n} training images are fewer than one batch of ${c.batchSize}`);
    this.framework = makeFramework(c.framework, c.backbone, c.heads, c.seed);
    const trainable = this.framework.namedTrainable();
    this.fixedRate = fixedRateParams(c.schedule, trainable.map(([name]) => name));
    this.optimizer = makeOptimizer(c.optimizer, trainable);
    this.log = new JsonlLog(path.join(opts.runDir, 'log.jsonl'));
  }

  get checkpointPath(): string {
    return path.join(this.opts.runDir, CHECKPOINT_FILE);
  }

  get position(): { epoch: number; stepInEpoch: number; step: number } {
    return { epoch: this.epoch, stepInEpoch: this.stepInEpoch, step: this.globalStep };
  }

  /**
   * Trains to config.epochs (or until the signal or maxSteps stops it with a checkpoint). Holds
   * the run folder's lock meanwhile: a second trainer on the same folder is refused (RunLock).
   */
  async run(): Promise<TrainSummary> {
    await ensureBackend();
    const lock = RunLock.acquire(this.opts.runDir);
    try {
      return await this.runLocked();
    } finally {
      lock.release();
    }
  }

  private async runLocked(): Promise<TrainSummary> {
    const c = this.config;
    const dir = this.opts.runDir;
    if (this.opts.resume) this.restore();
    else {
      if (fs.existsSync(this.checkpointPath)) {
        throw new Error(`${dir} already holds a run (${CHECKPOINT_FILE}); resume it or choose another directory`);
      }
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c, null, 2) + '\n');
      fs.writeFileSync(this.log.file, '');
    }
    const progress = this.opts.progress ?? defaultProgress();
    const title = runTitle(c);
    const totalSteps = c.epochs * this.stepsPerEpoch;
    const t0 = Date.now();
    let stepsThisCall = 0;
    let lastLoss = NaN;

    while (this.epoch < c.epochs) {
      const loader = new DataLoader(this.trainSet, {
        batchSize: c.batchSize, shuffle: true, dropLast: true, rng: new Rng(streamSeed(c.seed, this.epoch, -1, 1)),
      });
      let b = 0;
      for await (const raw of loader.rawEpoch()) {
        if (b++ < this.stepInEpoch) continue; // resuming mid-epoch: the order is the same, skip what was done
        // Let timers and signal handlers run: on CPU backends the step's awaits resolve as
        // microtasks, so without this a Ctrl-C or SIGTERM would wait for the epoch's end.
        await new Promise((resolve) => setImmediate(resolve));
        const tStep = Date.now();
        const rng = new Rng(streamSeed(c.seed, this.epoch, this.stepInEpoch, 2));
        const lr = learningRate(c.optimizer.lr, c.schedule, this.epoch + this.stepInEpoch / this.stepsPerEpoch, c.epochs);
        const { result, lambda } = await this.step(raw, rng, lr, totalSteps);
        lastLoss = result.loss;
        this.stepInEpoch++;
        this.globalStep++;
        stepsThisCall++;
        const imgPerSec = (c.batchSize * 1000) / Math.max(1, Date.now() - tStep);
        const record = { type: 'step' as const, epoch: this.epoch, step: this.globalStep, loss: result.loss, terms: result.terms, lambda, lr, imgPerSec, embeddingStd: result.embeddingStd };
        this.log.append(record);
        accumulate(this.epochSums, record);
        const elapsed = (Date.now() - t0) / 1000;
        progress.update({
          title, epoch: this.epoch, epochs: c.epochs, step: this.stepInEpoch, stepsPerEpoch: this.stepsPerEpoch,
          values: { loss: result.loss, 'λ': lambda ?? '-', lr, 'img/s': Math.round(imgPerSec) },
          etaSeconds: (elapsed / stepsThisCall) * (totalSteps - this.globalStep),
        });
        if (this.opts.signal?.aborted || (this.opts.maxSteps !== undefined && stepsThisCall >= this.opts.maxSteps)) {
          await this.save();
          progress.done(`stopped at epoch ${this.epoch + 1}, step ${this.stepInEpoch}; resume with the same run directory`);
          return { status: 'stopped', epochsDone: this.epoch, step: this.globalStep, lastLoss, seconds: elapsed, checkpoint: this.checkpointPath };
        }
        if (this.stepInEpoch >= this.stepsPerEpoch) break;
      }
      const epochRecord: EpochRecord = { type: 'epoch', epoch: this.epoch, step: this.globalStep, ...means(this.epochSums) };
      this.epochSums = newSums();
      this.epoch++;
      this.stepInEpoch = 0;
      if (this.opts.monitor && c.knn.every > 0 && (this.epoch % c.knn.every === 0 || this.epoch === c.epochs)) {
        const knn = await this.opts.monitor(this.framework.backbone, this.epoch);
        epochRecord.knnTop1 = knn.top1;
        if (knn.top5 !== undefined) epochRecord.knnTop5 = knn.top5;
      }
      this.log.append(epochRecord);
      await this.save();
    }
    const seconds = (Date.now() - t0) / 1000;
    if (stepsThisCall === 0) {
      // Resumed a run that had already finished: nothing trained now; its last loss is in the log.
      const steps = JsonlLog.read(this.log.file).filter((r) => r.type === 'step');
      lastLoss = steps.length > 0 ? (steps[steps.length - 1] as { loss: number }).loss : NaN;
      progress.done(`${title}: already complete (${c.epochs} epochs, step ${this.globalStep}), nothing to train; last loss ${lastLoss.toFixed(4)}`);
    } else {
      progress.done(`${title}: ${c.epochs} epochs done in ${seconds.toFixed(0)} s, last loss ${lastLoss.toFixed(4)}`);
    }
    return { status: 'completed', epochsDone: this.epoch, step: this.globalStep, lastLoss, seconds, checkpoint: this.checkpointPath };
  }

  private async step(raw: Awaited<ReturnType<Dataset['read']>>, rng: Rng, lr: number, totalSteps: number) {
    const batch = rawToBatch(raw);
    batch.labels.dispose();
    const { view1, view2 } = (() => {
      try {
        return twoViews(batch.images, this.recipe, rng);
      } finally {
        batch.images.dispose();
      }
    })();
    const views = makeViews(view1, this.config.view, rng);
    try {
      // Asynchronous reads: the webgpu backend cannot read synchronously under Node.
      const { result, grads, targets } = await this.framework.computeGradients(view1, view2, views, rng);
      try {
        this.opts.beforeUpdate?.(this.globalStep, result);
        if (!Number.isFinite(result.loss)) {
          const last = fs.existsSync(this.checkpointPath) ? `; the last good checkpoint is ${this.checkpointPath}` : '';
          throw new NonFiniteLossError(
            `training stopped: the loss became ${result.loss} at epoch ${this.epoch + 1}, step ${this.stepInEpoch + 1} ` +
              `(terms ${JSON.stringify(result.terms)}, lr ${lr}); lower the learning rate or check the data${last}`,
          );
        }
        this.optimizer.step(grads, learningRates(lr, this.config.optimizer.lr, this.fixedRate));
        this.framework.afterStep(targets, this.globalStep, totalSteps);
      } finally {
        tf.dispose(Object.values(grads));
        tf.dispose(targets);
      }
      const lambda = views.length > 0 ? views.map((v) => v.lambda).reduce((a, b) => a + b, 0) / views.length : null;
      return { result, lambda };
    } finally {
      disposeViews(views);
      view1.dispose();
      view2.dispose();
    }
  }

  /** Writes the checkpoint (atomically) at the current position. */
  async save(): Promise<void> {
    const state: Array<[string, tf.Tensor]> = [
      ...this.framework.namedState(),
      ...this.optimizer.namedState().map(([n, t]) => [`optim.${n}`, t] as [string, tf.Tensor]),
    ];
    await saveCheckpoint(this.checkpointPath, state, {
      backbone: this.config.backbone,
      epoch: this.epoch,
      step: this.globalStep,
      stepInEpoch: this.stepInEpoch,
      config: this.config,
      // The pixel normalisation of the views, which evaluation must apply too.
      normalize: this.recipe.normalize,
      frameworkScalars: this.framework.scalars(),
      optimizerScalars: this.optimizer.scalars(),
    });
  }

  private restore(): void {
    const file = this.checkpointPath;
    if (!fs.existsSync(file)) throw new Error(`cannot resume: ${file} does not exist`);
    const ckpt = loadCheckpoint(file);
    if (ckpt.meta.config === undefined) throw new Error(`${file}: metadata has no "config" field`);
    const saved = storedRunConfig(ckpt.meta.config, file);
    for (const key of Object.keys(this.config) as Array<keyof RunConfig>) {
      if (key === 'epochs') continue; // a run may be extended
      if (JSON.stringify(saved[key]) !== JSON.stringify(this.config[key])) {
        throw new Error(`${file}: the checkpoint was trained with ${key} = ${JSON.stringify(saved[key])}, this run asks for ${JSON.stringify(this.config[key])}`);
      }
    }
    assignFromCheckpoint(this.framework.namedState() as Array<[string, tf.Variable]>, ckpt, '', file);
    assignFromCheckpoint(
      this.optimizer.namedState().map(([n, t]) => [n, t as tf.Variable]),
      ckpt,
      'optim.',
      file,
    );
    this.framework.loadScalars((ckpt.meta.frameworkScalars ?? {}) as Record<string, number>);
    this.optimizer.loadScalars((ckpt.meta.optimizerScalars ?? {}) as Record<string, number>);
    this.epoch = ckpt.meta.epoch;
    this.globalStep = ckpt.meta.step;
    this.stepInEpoch = Number(ckpt.meta.stepInEpoch ?? 0);
    this.log.truncateAfter(this.globalStep);
    for (const r of JsonlLog.read(this.log.file)) {
      if (r.type === 'step' && r.epoch === this.epoch) accumulate(this.epochSums, r as unknown as StepMetrics);
    }
  }

  dispose(): void {
    this.framework.dispose();
    this.optimizer.dispose();
  }
}

interface Sums {
  n: number;
  values: Map<string, number>;
}

function newSums(): Sums {
  return { n: 0, values: new Map() };
}

interface StepMetrics {
  loss: number;
  terms: Record<string, number>;
  lambda: number | null;
  lr: number;
  imgPerSec: number;
  embeddingStd: number;
}

function accumulate(s: Sums, r: StepMetrics): void {
  s.n++;
  const add = (k: string, v: number | null) => v !== null && s.values.set(k, (s.values.get(k) ?? 0) + v);
  add('loss', r.loss);
  add('lambda', r.lambda);
  add('lr', r.lr);
  add('imgPerSec', r.imgPerSec);
  add('embeddingStd', r.embeddingStd);
  for (const [k, v] of Object.entries(r.terms)) add(`terms.${k}`, v);
}

/** The epoch's mean of every step metric (the terms one by one). */
function means(s: Sums): Omit<EpochRecord, 'type' | 'epoch' | 'step'> {
  const out: Record<string, number> = {};
  const terms: Record<string, number> = {};
  for (const [k, v] of s.values) {
    if (k.startsWith('terms.')) terms[k.slice(6)] = v / s.n;
    else out[k] = v / s.n;
  }
  return { ...out, terms } as Omit<EpochRecord, 'type' | 'epoch' | 'step'>;
}
