import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { datasetStatus, DATASETS, manualInstructions } from './data/download';
import type { DatasetName } from './data/named';
import { repoRoot } from './data/paths';
import { PROFILES, type Profile, type RunConfig } from './presets';
import { defaultRunDir, runTorchEngine, startRun, torchEngineUnavailable } from './experiments';
import { storedRunConfig } from './train/config';
import { JsonlLog } from './train/log';
import type { ProgressSink } from './train/progress';
import { InterruptedError, interruptible } from './train/interrupt';
import { runTitle } from './train/trainer';

/**
 * The few decisions every notebook shares, read from one place:
 *
 * - the **profile** (`smoke` | `cpu` | `paper`): `MIXMASK_PROFILE`, set by
 *   `npm run notebooks -- --profile X` or before starting Jupyter; `smoke` when unset, so that
 *   opening a notebook never starts hours of training by accident;
 * - the **dataset**: CIFAR-100 when it has been prepared (`npm run data -- cifar100`), otherwise
 *   Fashion-MNIST (offline, Debian), or `MIXMASK_DATASET` to force one;
 * - where **runs** live: earlier runs are looked up under `MIXMASK_RUNS_ROOT` (default `runs/`,
 *   where `npm run train` writes), then in `reports/` (the committed logs of `npm run
 *   reproduce`, e.g. reports/fashion-mnist-cpu/), then under `MIXMASK_NOTEBOOK_RUNS` (default
 *   `reports/runs/`, git-ignored), where notebooks write the runs they train themselves.
 */
export const PROFILE_ENV = 'MIXMASK_PROFILE';

export function notebookProfile(env: NodeJS.ProcessEnv = process.env): Profile {
  const v = env[PROFILE_ENV];
  if (v === undefined || v === '') return 'smoke';
  if (!(PROFILES as readonly string[]).includes(v)) throw new Error(`${PROFILE_ENV} must be one of ${PROFILES.join(', ')}, got ${JSON.stringify(v)}`);
  return v as Profile;
}

/** One value per profile, e.g. `byProfile(p, { smoke: 1, cpu: 10, paper: 100 })`. */
export function byProfile<T>(profile: Profile, values: Record<Profile, T>): T {
  return values[profile];
}

export interface DatasetChoice {
  name: DatasetName;
  /** Markdown: why this dataset, and how to get the paper's if it is missing. */
  note: string;
  /** Which of the paper's datasets are ready here. */
  ready: { cifar100: boolean; 'tiny-imagenet': boolean };
}

/** Whether the paper's datasets have been prepared (by `npm run data`). */
export function paperDatasetsReady(): DatasetChoice['ready'] {
  return { cifar100: datasetStatus(DATASETS.cifar100).ready, 'tiny-imagenet': datasetStatus(DATASETS['tiny-imagenet']).ready };
}

/** Markdown instructions for getting a missing dataset. */
export function downloadNote(id: 'cifar100' | 'tiny-imagenet'): string {
  return `\`npm run data -- ${id}\` downloads and verifies it; offline:\n\n\`\`\`\n${manualInstructions(DATASETS[id])}\n\`\`\``;
}

export function notebookDataset(env: NodeJS.ProcessEnv = process.env): DatasetChoice {
  const ready = paperDatasetsReady();
  const forced = env.MIXMASK_DATASET;
  if (forced) {
    return { name: forced as DatasetName, note: `Dataset **${forced}**, forced by \`MIXMASK_DATASET\`.`, ready };
  }
  if (ready.cifar100) return { name: 'cifar100', note: 'Dataset **CIFAR-100**, as in the paper (Figure 1, Table 1).', ready };
  return {
    name: 'fashion-mnist',
    note:
      'CIFAR-100 (the paper\'s dataset) is not prepared here, so this notebook uses **Fashion-MNIST** (real images, ' +
      'installed offline by the Debian package `dataset-fashion-mnist`, 28×28 grey, resized to 32×32 RGB). To use ' +
      `CIFAR-100 instead: ${downloadNote('cifar100')}`,
    ready,
  };
}

/** Where earlier runs are looked up, in order. */
export function runRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  return [env.MIXMASK_RUNS_ROOT ?? path.join(repoRoot(), 'runs'), path.join(repoRoot(), 'reports'), notebookRunsRoot(env)];
}

/** Where notebooks write the runs they train (git-ignored). */
export function notebookRunsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.MIXMASK_NOTEBOOK_RUNS ?? path.join(repoRoot(), 'reports', 'runs');
}

/** Whether a run directory holds a finished run (its last epoch line is in log.jsonl). */
export function runComplete(runDir: string): boolean {
  const log = path.join(runDir, 'log.jsonl');
  const cfg = path.join(runDir, 'config.json');
  if (!fs.existsSync(log) || !fs.existsSync(cfg)) return false;
  const epochs = (JSON.parse(fs.readFileSync(cfg, 'utf8')) as { epochs?: number }).epochs;
  if (typeof epochs !== 'number') return false;
  return JsonlLog.read(log).some((r) => r.type === 'epoch' && r.epoch === epochs - 1);
}

/**
 * What makes two runs the same experiment (not `source`, `profile` labels or the kNN cadence).
 * defaultRunDir() names a run by framework, method, mask and seed only, so two runs that
 * differ in e.g. ratio or epochs would share a folder: runDirFor() adds a hash for those.
 */
export function experimentKey(c: RunConfig): string {
  const pick = {
    framework: c.framework, dataset: c.dataset, seed: c.seed, backbone: c.backbone, imageSize: c.imageSize, recipe: c.recipe,
    epochs: c.epochs, batchSize: c.batchSize, trainSubset: c.trainSubset, optimizer: c.optimizer, schedule: c.schedule,
    heads: c.heads, view: c.view, validation: c.validation ?? null,
  };
  return stableJson(pick);
}

/** JSON with object keys sorted at every level, so that equal configurations give equal strings. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function storedKey(runDir: string): string | null {
  const cfg = path.join(runDir, 'config.json');
  if (!fs.existsSync(cfg)) return null;
  try {
    return experimentKey(storedRunConfig(JSON.parse(fs.readFileSync(cfg, 'utf8')), cfg));
  } catch {
    return null;
  }
}

/**
 * The run directory of `config` under `root`: defaultRunDir() when that folder is free or holds
 * the same experiment, else the same name with `~<hash of the experiment>` appended.
 */
export function runDirFor(config: RunConfig, root: string): string {
  const dir = defaultRunDir(config, root);
  const key = storedKey(dir);
  if (key === null || key === experimentKey(config)) return dir;
  return `${dir}~${crypto.createHash('sha1').update(experimentKey(config)).digest('hex').slice(0, 8)}`;
}

/** The first finished run of exactly this experiment under the run roots, or null. */
export function findRun(config: RunConfig, roots: string[] = runRoots()): string | null {
  for (const root of roots) {
    const dir = runDirFor(config, root);
    if (runComplete(dir) && storedKey(dir) === experimentKey(config)) return dir;
  }
  return null;
}

export interface TrainOrLoadResult {
  runDir: string;
  /** True when an earlier run was found and nothing was trained. */
  loaded: boolean;
  seconds: number;
}

/** Whether `runDir` holds a finished run of `config`; an error when it holds a run of another configuration. */
function finishedRunOf(config: RunConfig, runDir: string): boolean {
  const key = storedKey(runDir);
  if (key !== null && key !== experimentKey(config)) {
    throw new Error(`${runDir} holds a run of another configuration (see its config.json); choose another runDir or delete it`);
  }
  return runComplete(runDir);
}

/**
 * A finished run of `config`: an earlier one if found (see runRoots), else trained now into
 * notebookRunsRoot() — resuming an interrupted one there, so a notebook stopped halfway
 * continues where it was.
 */
export async function trainOrLoad(
  config: RunConfig,
  opts: { progress?: ProgressSink; roots?: string[]; writeRoot?: string; runDir?: string } = {},
): Promise<TrainOrLoadResult> {
  if (opts.runDir && finishedRunOf(config, opts.runDir)) return { runDir: opts.runDir, loaded: true, seconds: 0 };
  const found = opts.runDir ? null : findRun(config, opts.roots);
  if (found) return { runDir: found, loaded: true, seconds: 0 };
  const runDir = opts.runDir ?? runDirFor(config, opts.writeRoot ?? notebookRunsRoot());
  const resume = fs.existsSync(path.join(runDir, 'checkpoint.safetensors'));
  const t0 = Date.now();
  // Kernel → Interrupt stops the run at its next step with a checkpoint, and ends the cell only
  // then; re-running the cell finds the checkpoint and resumes.
  const summary = await interruptible((signal) => startRun({ config, runDir, resume, progress: opts.progress, signal }));
  if (summary.status === 'stopped') {
    throw new InterruptedError(
      `${runTitle(config)} stopped at epoch ${summary.epochsDone + 1} (step ${summary.step}) with a checkpoint in ${runDir}; re-run the cell to resume`,
    );
  }
  return { runDir, loaded: false, seconds: (Date.now() - t0) / 1000 };
}

/**
 * trainOrLoad for the PyTorch engine (lib/experiments/torch-engine): the same config
 * trained by `nproc` processes of PyTorch DDP through torchrun in `runDir` (default: the tfjs
 * run's folder name with `-torch<nproc>`), reused when finished, resumed when a checkpoint is
 * there; Kernel → Interrupt stops torchrun with the last checkpoint intact. Output lines go to
 * `onLine`.
 */
export async function trainOrLoadTorch(
  config: RunConfig,
  opts: { nproc?: number; runDir?: string; onLine?: (line: string) => void } = {},
): Promise<TrainOrLoadResult> {
  const nproc = opts.nproc ?? 2;
  const runDir = opts.runDir ?? `${defaultRunDir(config, notebookRunsRoot())}-torch${nproc}`;
  if (finishedRunOf(config, runDir)) return { runDir, loaded: true, seconds: 0 };
  const why = torchEngineUnavailable(config);
  if (why) throw new Error(`PyTorch engine: ${why}`);
  const resume = fs.existsSync(path.join(runDir, 'checkpoint.safetensors'));
  const t0 = Date.now();
  await interruptible((signal) => runTorchEngine({ config, runDir, resume, launch: { nprocPerNode: nproc, nnodes: 1 }, signal, onLine: opts.onLine }));
  return { runDir, loaded: false, seconds: (Date.now() - t0) / 1000 };
}

/**
 * Evaluation budgets of the notebooks (02, 05): how many train/test images (a seeded random
 * subset; null = the whole split) and epochs. `paper` is Tables 2 and 3 as printed.
 */
export interface EvalBudget {
  trainImages: number | null;
  testImages: number | null;
  linearEpochs: number;
  finetuneEpochs: number;
  /** Fine-tuning batch (Table 3: 256). */
  batchSize: number;
}

export const EVAL_BUDGETS: Record<Profile, EvalBudget> = {
  smoke: { trainImages: 1000, testImages: 256, linearEpochs: 3, finetuneEpochs: 1, batchSize: 64 },
  cpu: { trainImages: 10_000, testImages: 2_000, linearEpochs: 30, finetuneEpochs: 5, batchSize: 128 },
  paper: { trainImages: null, testImages: null, linearEpochs: 100, finetuneEpochs: 20, batchSize: 256 },
};
