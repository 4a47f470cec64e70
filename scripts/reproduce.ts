/**
 * `npm run reproduce` — Figure 1 on real data: every framework (MoCo v2, SimCLR, BYOL, SimSiam)
 * pretrained on Fashion-MNIST as baseline and with MixMask (block mask, grid 8, ratio 0.5), same
 * seed and budget per pair, `--seeds` seeds each (default 3: 24 runs). The short profiles hold
 * out a validation split of the training images (lib/data/split): pretraining and the kNN
 * monitor's bank use the rest, the monitor queries the validation images. Each encoder is then
 * evaluated once on the test split by kNN (k = 200, T = 0.1, the whole train split as bank) and
 * a linear probe on frozen features; `--validate` evaluates on the validation split instead (bank
 * and probe on the rest), into results-validation.json, for budget decisions that must not see
 * the test split. Writes into `--out` (default reports/fashion-mnist-<profile>): results.json
 * (after every run, atomically, so an interrupted reproduction resumes where it stopped),
 * results.md and the README tables between `<!-- results:<dataset>-<profile> -->` markers (both
 * generated from results.json only), figure1.html/png (mean curves with min–max bands over
 * seeds) and each run's config.json + log.jsonl in <out>/<run name>/ — the layout
 * `defaultRunDir` gives under reports/, so the notebooks find these runs (lib/notebook
 * runRoots). Checkpoints stay in runs/. `--regenerate <results.json>` rewrites results.md and
 * the README tables from a results file without training.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import { formatBackendReport, initBackend, parseThreads } from '../lib/backend';
import { loadSplits, repoRoot, validationSplit } from '../lib/data';
import { runNormalization } from '../lib/data/recipes';
import { type Dataset, SubsetDataset } from '../lib/data';
import { extractFeatures, knnClassify, knnNeighbours, knnVote, randomIndices, trainLinearOnFeatures } from '../lib/eval';
import type { FrameworkName } from '../lib/frameworks';
import { writeFileAtomic, writeJsonAtomic } from '../lib/io/atomic';
import type { ViewMethod } from '../lib/masks/views';
import { findChromium, readRunLog, screenshot, trainingCurvesFigure, writeFigureHtml, type CurveRun, type PlotlyFigure } from '../lib/plot';
import { PROFILES, type Profile, type RunConfig, pretrainConfig } from '../lib/presets';
import { loadBackbone } from '../lib/train/checkpoint';
import { defaultRunDir, startRun } from '../lib/experiments';
import { readRunConfig, storedRunConfig } from '../lib/train/config';
import type { TrainSummary } from '../lib/train/trainer';
import { mean, type MeanInterval, meanInterval, sampleSd } from '../lib/util/stats';
import { Args, runCli, stopSignal } from './cli';

export const REPRO_FRAMEWORKS: readonly FrameworkName[] = ['moco-v2', 'simclr', 'byol', 'simsiam'];
const GROUP_NAMES: Record<string, string> = { 'moco-v2': 'MoCo v2', simclr: 'SimCLR', byol: 'BYOL', simsiam: 'SimSiam' };
const METHODS: readonly ViewMethod[] = ['none', 'mixmask'];
const DATASET = 'fashion-mnist' as const;
/** Raw-pixel kNN on Fashion-MNIST at k = 200, T = 0.1, 60,000 train / 10,000 test (docs/method.md#knn-monitor): every encoder must beat it. */
export const RAW_PIXEL_KNN = 78.85;
/** Seeds per baseline/MixMask pair unless --seeds says otherwise. */
export const DEFAULT_SEEDS = 3;
/** Version 2: the eval split is recorded; version 1 (test split, one seed, monitor on test) is still read by --regenerate. */
export const RESULTS_FORMAT = 'mixmask-ts-reproduction/2';
const FORMAT_V1 = 'mixmask-ts-reproduction/1';

/** Where the final numbers of a results file come from: the test split, or the held-out validation split (--validate). */
export type EvalSplit = 'test' | 'validation';

export interface RunResult {
  framework: FrameworkName;
  method: ViewMethod;
  seed: number;
  runDir: string;
  /** Last kNN monitor reading (subsets, as logged during training; its split: monitorSplit(config)). */
  monitorKnnTop1: number | null;
  /** Final kNN top-1 / top-5 (%) on Results.evalSplit (test: the whole train split as bank; validation: the rest as bank). */
  knnTop1: number;
  knnTop5: number;
  linearTop1: number;
  linearTop5: number;
  /** Seconds of pretraining (summed over interrupted and resumed calls) and of the evaluation. */
  trainSeconds: number;
  evalSeconds: number;
  /** Standard deviation of the normalised embedding at the last step (collapse shows as → 0). */
  finalEmbeddingStd: number | null;
  backend: string;
  command: string;
  config: RunConfig;
}

export interface Results {
  format: string;
  dataset: string;
  profile: Profile;
  backend: string;
  backendReport: string;
  /** The split the final kNN and linear numbers come from (absent in version 1 files: test). */
  evalSplit?: EvalSplit;
  /** A budget variant's epochs (`--epochs`, validation only); absent or null: the profile's. */
  budgetEpochs?: number | null;
  /** Raw-pixel kNN on the same bank and queries (null: not measured for this setting). */
  rawPixelKnn: number | null;
  /** Final evaluation on random subsets of this many bank / query images (null: the whole splits). */
  evalSubset: number | null;
  linearEpochs: number;
  startedAt: string;
  updatedAt: string;
  runs: RunResult[];
}

export interface PairSummary {
  framework: FrameworkName;
  seed: number;
  baseline: RunResult;
  mixmask: RunResult;
  knnDiff: number;
  linearDiff: number;
}

/** Baseline/MixMask pairs present in the results, in framework then seed order. */
export function pairs(runs: readonly RunResult[]): PairSummary[] {
  const out: PairSummary[] = [];
  const seeds = [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b);
  for (const fw of REPRO_FRAMEWORKS) {
    for (const seed of seeds) {
      const b = runs.find((r) => r.framework === fw && r.seed === seed && r.method === 'none');
      const m = runs.find((r) => r.framework === fw && r.seed === seed && r.method === 'mixmask');
      if (b && m) out.push({ framework: fw, seed, baseline: b, mixmask: m, knnDiff: m.knnTop1 - b.knnTop1, linearDiff: m.linearTop1 - b.linearTop1 });
    }
  }
  return out;
}

/**
 * The order runs are handed to the lanes: seed by seed, and within a seed every MixMask run
 * (about 1.4× its baseline's time) before the baselines, so that the lanes finish together
 * instead of one lane running the last long run alone (at the cpu profile that left a lane idle
 * for 22 of 108 minutes).
 */
export function jobOrder(frameworks: readonly FrameworkName[], seeds = 1): { fw: FrameworkName; method: ViewMethod; seed: number }[] {
  return Array.from({ length: seeds }, (_, seed) => [...METHODS].reverse().flatMap((method) => frameworks.map((fw) => ({ fw, method, seed })))).flat();
}

/** The split the kNN monitor of a run queried: validation when the config held one out, else test. */
export function monitorSplit(c: RunConfig): EvalSplit {
  return c.validation ? 'validation' : 'test';
}

/** Mean and sample standard deviation over seeds (sd null for one seed). */
export interface Spread {
  mean: number;
  sd: number | null;
}

export interface FrameworkSummary {
  framework: FrameworkName;
  seeds: number[];
  knn: { baseline: Spread; mixmask: Spread; diff: MeanInterval };
  linear: { baseline: Spread; mixmask: Spread; diff: MeanInterval };
}

const spread = (v: number[]): Spread => ({ mean: mean(v), sd: sampleSd(v) });

/**
 * Per framework with at least one finished pair: mean ± sd over seeds of each method's kNN and
 * linear top-1, and the paired MixMask − baseline difference with its 95 % Student-t interval.
 */
export function frameworkSummaries(runs: readonly RunResult[]): FrameworkSummary[] {
  const ps = pairs(runs);
  return REPRO_FRAMEWORKS.map((fw) => ps.filter((p) => p.framework === fw)).filter((x) => x.length > 0).map((x) => ({
    framework: x[0].framework,
    seeds: x.map((p) => p.seed),
    knn: { baseline: spread(x.map((p) => p.baseline.knnTop1)), mixmask: spread(x.map((p) => p.mixmask.knnTop1)), diff: meanInterval(x.map((p) => p.knnDiff)) },
    linear: { baseline: spread(x.map((p) => p.baseline.linearTop1)), mixmask: spread(x.map((p) => p.mixmask.linearTop1)), diff: meanInterval(x.map((p) => p.linearDiff)) },
  }));
}

const fmt = (v: number | null, d = 2) => (v === null ? '–' : v.toFixed(d));
const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;
const pm = (x: Spread) => (x.sd === null ? fmt(x.mean) : `${fmt(x.mean)} ± ${fmt(x.sd)}`);
const interval = (d: MeanInterval) => (d.low === null ? `${signed(d.mean)} (one seed: no interval)` : `${signed(d.mean)} [${signed(d.low)}, ${signed(d.high!)}]`);
const excludes = (d: MeanInterval) => (d.low === null ? '–' : d.excludesZero ? 'yes' : '**no**');

function splitOf(r: Results): EvalSplit {
  return r.evalSplit ?? 'test';
}

/** Which images the final numbers and the monitor come from, in one sentence each. */
function protocolLines(r: Results): string[] {
  const c0 = r.runs[0]?.config;
  const split = splitOf(r);
  const monitors = [...new Set(r.runs.map((x) => monitorSplit(x.config)))];
  const monitorText = monitors.length === 1 && monitors[0] === 'validation'
    ? `the kNN monitor queried the validation split: ${c0?.validation?.images.toLocaleString('en-US')} training images held out (class-balanced, seed ${c0?.validation?.seed}, the same for every run), never trained on; pretraining and the monitor's bank used the rest. Budget choices made before this split existed were taken on the test split.`
    : monitors.length === 1
      ? 'the kNN monitor queried the **test** split and nothing was held out (the protocol before the validation split: the budget was also chosen on test).'
      : `the kNN monitor queried the validation split in some runs and the test split in others (${monitors.join(', ')}).`;
  const seen = split === 'test'
    ? (r.evalSubset
      ? `Final numbers (kNN, linear): **test split**, random subsets of ${r.evalSubset} bank and test images (a quick check, not comparable with the raw-pixel reference).`
      : `Final numbers (kNN, linear): **test split**, touched once per encoder: kNN (cosine, k = 200, T = 0.1) with all 60,000 training images as bank on all 10,000 test images; linear probe (SGD lr 30, momentum 0.9, ${r.linearEpochs} epochs on frozen features, lr × 0.1 at 60 % and 80 % of them) trained on the 60,000. Raw-pixel kNN at the same setting: ${fmt(r.rawPixelKnn)} %.`)
    : `Final numbers (kNN, linear): **validation split** (for budget decisions; no test image read): kNN (cosine, k = 200, T = 0.1) with the rest of the training split as bank${r.evalSubset ? ` (random subsets of ${r.evalSubset} bank and validation images)` : ''}; linear probe (${r.linearEpochs} epochs) trained on that rest. Raw-pixel kNN at the same setting: ${r.rawPixelKnn === null ? 'not measured' : `${fmt(r.rawPixelKnn)} %`}.`;
  return [seen, `Monitor (the curves of Figure 1, "last monitor kNN"): ${monitorText}`];
}

/** ' (32 epochs)' for a framework that trains longer or shorter than the first run's, else ''. */
function epochsNote(r: Results, fw: FrameworkName): string {
  const e = r.runs.find((y) => y.framework === fw)?.config.epochs;
  return e !== undefined && e !== r.runs[0]?.config.epochs ? ` (${e} epochs)` : '';
}

/** The per-framework table (means, spreads, intervals): results.md's first table and the README's. */
export function summaryTable(r: Results): string[] {
  const split = splitOf(r);
  const sums = frameworkSummaries(r.runs);
  return [
    `| framework | seeds | kNN baseline (${split}) | kNN MixMask (${split}) | Δ kNN [95 % CI] | excludes 0 | linear baseline (${split}) | linear MixMask (${split}) | Δ linear [95 % CI] | excludes 0 |`,
    '|---|---|---|---|---|---|---|---|---|---|',
    ...sums.map((x) => `| ${GROUP_NAMES[x.framework]}${epochsNote(r, x.framework)} | ${x.seeds.join(', ')} | ${pm(x.knn.baseline)} | ${pm(x.knn.mixmask)} | ${interval(x.knn.diff)} | ${excludes(x.knn.diff)} | ${pm(x.linear.baseline)} | ${pm(x.linear.mixmask)} | ${interval(x.linear.diff)} | ${excludes(x.linear.diff)} |`),
  ];
}

/** results.md: the protocol, the per-framework summary, one row per run, the pairs, the totals. Everything from `r`. */
export function resultsMarkdown(r: Results, source = path.basename(resultsPath('.', splitOf(r)))): string {
  const rows = [...r.runs].sort(runOrder);
  const c0 = rows[0]?.config;
  const split = splitOf(r);
  // Epochs may differ between frameworks (never within a pair): the first row's, then those that differ by name.
  const differing = new Map(rows.filter((x) => x.config.epochs !== c0?.epochs).map((x) => [x.framework, x.config.epochs]));
  const epochsText = `${c0?.epochs} epochs${differing.size ? ` (${[...differing].map(([fw, e]) => `${GROUP_NAMES[fw] ?? fw}: ${e}`).join(', ')})` : ''}`;
  const monitorQuery = c0 ? (monitorSplit(c0) === 'validation' ? 'validation' : 'test') : '';
  const lines = [
    `# Figure 1 reproduction on Fashion-MNIST (${r.profile} profile${split === 'validation' ? ', evaluated on the validation split' : ''})`,
    '',
    c0
      ? `Budget per run: ResNet-${c0.backbone.depth} (CIFAR stem) at width ${c0.backbone.width}, ${c0.trainSubset?.toLocaleString('en-US') ?? 'all'} training images, ${epochsText} at batch ${c0.batchSize}, ${c0.imageSize}×${c0.imageSize} px; kNN monitor every ${c0.knn.every === 1 ? 'epoch' : `${c0.knn.every} epochs`} on ${c0.knn.bankSubset?.toLocaleString('en-US') ?? 'all'} bank / ${c0.knn.querySubset?.toLocaleString('en-US') ?? 'all'} ${monitorQuery} query images. MixMask: ${c0.view.maskType ?? 'block'} mask, grid ${c0.view.gridSize}, ratio ${c0.view.ratio}.`
      : '',
    ...protocolLines(r),
    `Backend: ${[...new Set(r.runs.map((x) => x.backend))].join('; ') || r.backend}. ${r.runs.some((x) => !x.config.validation) && r.profile !== 'paper' ? 'These runs follow the protocol before the validation split, which `npm run reproduce` no longer runs; each run\'s command below retrains it.' : `All of it: \`npm run reproduce -- --profile ${r.profile}${split === 'validation' ? ' --validate' : ''}${r.budgetEpochs ? ` --epochs ${r.budgetEpochs}` : ''}\`.`} Generated from ${source} by the script; do not edit.`,
    '',
    '## Per framework, over seeds',
    '',
    `Mean ± sample standard deviation over seeds; Δ = MixMask − baseline of the same seed, its mean with the 95 % Student-t interval over seeds (t quantile for n − 1 degrees of freedom); "excludes 0": the interval lies wholly on one side of zero.`,
    '',
    ...summaryTable(r),
    '',
    '## Every run',
    '',
    `| framework | method | seed | epochs | kNN top-1 (${split}) | linear top-1 (${split}) | beats raw pixels | last monitor kNN (split) | embedding std | train time | eval time | command |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((x) =>
      `| ${GROUP_NAMES[x.framework] ?? x.framework} | ${x.method === 'none' ? 'baseline' : 'MixMask'} | ${x.seed} | ${x.config.epochs} | ${fmt(x.knnTop1)} | ${fmt(x.linearTop1)} | ${r.rawPixelKnn === null || r.evalSubset ? '–' : x.knnTop1 > r.rawPixelKnn ? 'yes' : '**no**'} | ${fmt(x.monitorKnnTop1)} (${monitorSplit(x.config)}) | ${fmt(x.finalEmbeddingStd, 4)} | ${minutes(x.trainSeconds)} | ${minutes(x.evalSeconds)} | \`${trainCommand(x.config)}\` |`),
    '',
    `## MixMask − baseline per seed (${split})`,
    '',
    '| framework | seed | kNN baseline → MixMask | Δ kNN | linear baseline → MixMask | Δ linear |',
    '|---|---|---|---|---|---|',
    ...pairs(r.runs).map((p) => `| ${GROUP_NAMES[p.framework]} | ${p.seed} | ${fmt(p.baseline.knnTop1)} → ${fmt(p.mixmask.knnTop1)} | ${signed(p.knnDiff)} | ${fmt(p.baseline.linearTop1)} → ${fmt(p.mixmask.linearTop1)} | ${signed(p.linearDiff)} |`),
    '',
  ];
  const train = r.runs.reduce((s, x) => s + x.trainSeconds, 0);
  const ev = r.runs.reduce((s, x) => s + x.evalSeconds, 0);
  const seeds = [...new Set(r.runs.map((x) => x.seed))].sort((a, b) => a - b);
  const perSeed = seeds.map((sd) => `seed ${sd}: ${minutes(r.runs.filter((x) => x.seed === sd).reduce((s, x) => s + x.trainSeconds, 0))}`).join(', ');
  lines.push(`Total: ${r.runs.length} runs, pretraining ${minutes(train)} summed over runs (${perSeed}), evaluation ${minutes(ev)}.`, '');
  return lines.join('\n');
}

/** The marker pair around the generated tables of a README: `<!-- results:fashion-mnist-cpu -->` … `<!-- /results:fashion-mnist-cpu -->`. */
export function resultsMarkers(name: string): [string, string] {
  return [`<!-- results:${name} -->`, `<!-- /results:${name} -->`];
}

/** The README block: the per-framework table of a test-split results file, with where it comes from. */
export function readmeBlock(r: Results, source: string): string {
  const seeds = [...new Set(r.runs.map((x) => x.seed))].sort((a, b) => a - b);
  const monitors = [...new Set(r.runs.map((x) => monitorSplit(x.config)))];
  return [
    `Generated by \`npm run reproduce\` from [${path.basename(source)}](${source}) (${r.updatedAt.slice(0, 10)}; do not edit): ${r.runs.length} runs, seed${seeds.length === 1 ? '' : 's'} ${seeds.join(', ')}; final numbers on the **${splitOf(r)} split**, kNN monitor on the **${monitors.join(' / ')}** split${monitors.includes('test') ? ' (the protocol before the validation split: budget chosen and monitored on test)' : ''}. Raw pixels: ${fmt(r.rawPixelKnn)} %.`,
    '',
    ...summaryTable(r),
  ].join('\n');
}

/** Replaces the text between a marker pair in `file`; false (and nothing written) when the file lacks them. */
export function writeMarkedBlock(file: string, name: string, block: string): boolean {
  if (!fs.existsSync(file)) return false;
  const text = fs.readFileSync(file, 'utf8');
  const [open, close] = resultsMarkers(name);
  const a = text.indexOf(open);
  const b = text.indexOf(close);
  if (a < 0 || b < a) return false;
  writeFileAtomic(file, `${text.slice(0, a + open.length)}\n${block}\n${text.slice(b)}`);
  return true;
}

/**
 * results.md (or results-validation.md) beside a results file, and for test-split results the
 * README tables: <out>/README.md, and the project README when `out` is the profile's default.
 */
export function writeReports(r: Results, resultsFile: string): string[] {
  const out = path.dirname(resultsFile);
  const md = resultsFile.replace(/\.json$/, '.md');
  writeFileAtomic(md, resultsMarkdown(r, path.basename(resultsFile)));
  const written = [md];
  if (splitOf(r) !== 'test') return written;
  const name = `${r.dataset}-${r.profile}`;
  const local = path.join(out, 'README.md');
  if (writeMarkedBlock(local, name, readmeBlock(r, path.basename(resultsFile)))) written.push(local);
  if (path.resolve(out) === path.join(repoRoot(), 'reports', name)) {
    const top = path.join(repoRoot(), 'README.md');
    if (writeMarkedBlock(top, name, readmeBlock(r, path.relative(repoRoot(), resultsFile)))) written.push(top);
  }
  return written;
}

export interface ReproduceArgs {
  profile: Profile;
  out: string;
  runsRoot: string;
  frameworks: FrameworkName[];
  /** Seeds 0 … seeds − 1 for every pair. */
  seeds: number;
  linearEpochs: number;
  /** Evaluate on a seeded random subset of this many bank and query images (null: all; quick checks). */
  evalSubset: number | null;
  /** The final evaluation on the validation split (bank and probe on the rest), into results-validation.json. */
  validate: boolean;
  /** Rewrite the reports of this results file and stop (no training). */
  regenerate: string | null;
  figure: boolean;
  /** Runs pretrained side by side, each in its own process on cores/lanes threads. */
  lanes: number;
  /**
   * A budget variant: every run trains this many epochs instead of the profile's (null: the
   * profile's). Only with `validate` (budget decisions never see the test split), into its own
   * results folder and runs root, so it never mixes with the preset's runs.
   */
  epochs: number | null;
}

export const USAGE = `usage: npm run reproduce -- [--profile cpu|smoke] [options]
  --profile <p>           training budget (default cpu: see lib/presets)
  --out <dir>             results folder (default reports/fashion-mnist-<profile>)
  --runs-root <dir>       where run directories and checkpoints go (default runs)
  --frameworks <a,b>      subset of ${REPRO_FRAMEWORKS.join(',')} (default all)
  --seeds <n>             seeds 0 … n−1 for every baseline/MixMask pair (default ${DEFAULT_SEEDS})
  --linear-epochs <n>     linear-probe epochs (default 100)
  --eval-subset <n>       final evaluation on n random bank and n random query images (default: all)
  --validate              final evaluation on the validation split instead of test (budget decisions), into results-validation.json/md
  --regenerate <file>     rewrite <file>'s .md and the README tables from that results file, then stop (no training)
  --lanes <n>             runs trained side by side, each on cores/n threads (default ${defaultLanes()} here)
  --epochs <n>            a budget variant: every run trains n epochs instead of the profile's; only with --validate;
                          results into <out>-epochs<n> and runs into <runs-root>/epochs<n> unless --out / --runs-root say otherwise
  --no-figure             skip figure1.html/png`;

export function parseReproduceArgs(argv: readonly string[]): ReproduceArgs | 'help' {
  const a = new Args(argv, { options: ['--profile', '--out', '--runs-root', '--frameworks', '--seeds', '--linear-epochs', '--eval-subset', '--lanes', '--regenerate', '--epochs'], flags: ['--no-figure', '--validate'] });
  if (a.help) return 'help';
  const profile = a.oneOf('--profile', PROFILES) ?? 'cpu';
  const fws = a.string('--frameworks');
  const frameworks = fws ? fws.split(',').map((f) => f.trim()) : [...REPRO_FRAMEWORKS];
  for (const f of frameworks) {
    if (!REPRO_FRAMEWORKS.includes(f as FrameworkName)) throw new Error(`--frameworks: '${f}' is not one of ${REPRO_FRAMEWORKS.join(', ')}`);
  }
  const epochs = a.int('--epochs', 1) ?? null;
  const validate = a.flag('--validate');
  if (epochs !== null && !validate) throw new Error('--epochs (a budget variant) needs --validate: budget choices are made on the validation split, never on test');
  const variant = epochs === null ? '' : `-epochs${epochs}`;
  return {
    profile,
    out: a.string('--out') ?? path.join('reports', `${DATASET}-${profile}${variant}`),
    runsRoot: a.string('--runs-root') ?? (epochs === null ? 'runs' : path.join('runs', `epochs${epochs}`)),
    frameworks: frameworks as FrameworkName[],
    seeds: a.int('--seeds', 1) ?? DEFAULT_SEEDS,
    linearEpochs: a.int('--linear-epochs', 1) ?? 100,
    evalSubset: a.int('--eval-subset', 1) ?? null,
    validate,
    regenerate: a.string('--regenerate') ?? null,
    figure: !a.flag('--no-figure'),
    lanes: a.int('--lanes', 1) ?? defaultLanes(),
    epochs,
  };
}

/**
 * Two lanes wherever there are two cores: at the cpu profile's small width a run is bound by
 * per-op overhead, not arithmetic, so two runs on one thread each train ~2× the images per
 * second of one run on two threads (measured: reports/fashion-mnist-cpu/README.md#two-lanes).
 */
function defaultLanes(): number {
  return Math.min(2, os.availableParallelism());
}

/** Threads per lane: MIXMASK_THREADS if set, else the cores shared out between the lanes. */
function laneThreads(lanes: number): number {
  const env = process.env.MIXMASK_THREADS;
  return env?.trim() ? parseThreads(env) : Math.max(1, Math.floor(os.availableParallelism() / lanes));
}

const PRETRAIN_ONE = '--pretrain-one';

/**
 * Pretrains one run in a child process (`reproduce.js --pretrain-one <runDir> <config json>`)
 * on `threads` threads, resuming from its checkpoint if there is one. The child's progress lines
 * are forwarded with the run's name in front. The child has its own process group, so a Ctrl-C
 * reaches only this process, which passes it on once as SIGTERM: the child then stops after
 * its current step with a checkpoint.
 */
function pretrainInChild(config: RunConfig, runDir: string, threads: number, signal: AbortSignal | undefined): Promise<TrainSummary> {
  const name = path.basename(runDir);
  const child = spawn(process.execPath, [__filename, PRETRAIN_ONE, runDir, JSON.stringify(config)], {
    env: { ...process.env, MIXMASK_THREADS: String(threads) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const stop = () => child.kill('SIGTERM');
  signal?.addEventListener('abort', stop, { once: true });
  const errLines: string[] = [];
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    if (!line.trim()) return;
    errLines.push(line);
    if (errLines.length > 20) errLines.shift();
    process.stderr.write(`[${name}] ${line}\n`);
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      signal?.removeEventListener('abort', stop);
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as TrainSummary);
      else reject(new Error(`pretraining ${name} failed (exit code ${code}):\n${errLines.join('\n')}`));
    });
  });
}

/** The child side of pretrainInChild. */
async function pretrainOne(argv: readonly string[]): Promise<number> {
  const [runDir, json] = argv;
  if (!runDir || !json) throw new Error(`${PRETRAIN_ONE} needs a run directory and a config (JSON)`);
  await initBackend();
  const signal = stopSignal('stopping after this step with a checkpoint');
  const resume = fs.existsSync(path.join(runDir, 'checkpoint.safetensors'));
  const summary = await startRun({ config: JSON.parse(json) as RunConfig, runDir, resume, signal });
  process.stdout.write(JSON.stringify(summary) + '\n');
  return 0;
}

function runName(c: RunConfig): string {
  return path.basename(defaultRunDir(c));
}

/** Pretraining seconds of earlier, interrupted calls of a run, kept beside its checkpoint. */
const SECONDS_FILE = 'reproduce-seconds.json';
function earlierSeconds(runDir: string): number {
  const f = path.join(runDir, SECONDS_FILE);
  return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as { seconds: number }).seconds : 0;
}

/**
 * The bank (and the linear probe's training images) and the queries of the final evaluation.
 * test: the whole train split (validation images included: they are training images) and the
 * test split. validation: the train split less the validation images, and the validation images;
 * the test split is not read. `subset`: seeded random subsets of both.
 */
export async function evalSets(c: RunConfig, split: EvalSplit, subset: number | null): Promise<{ bank: Dataset; query: Dataset }> {
  const splits = await loadSplits(c.dataset);
  let bank: Dataset = splits.train;
  let query: Dataset = splits.test;
  if (split === 'validation') {
    if (!c.validation) throw new Error(`--validate: the ${c.profile} profile holds out no validation split (config.validation is null)`);
    const held = validationSplit(splits.train, c.validation);
    bank = held.rest;
    query = held.validation;
  }
  const pick = (ds: Dataset, seed: number) => (subset && subset < ds.size ? new SubsetDataset(ds, randomIndices(ds.size, subset, seed)) : ds);
  return { bank: pick(bank, 21), query: pick(query, 22) };
}

/** Raw-pixel kNN top-1 (k = 200, T = 0.1, cosine on the stored pixels) of the evaluation sets: the reference every encoder must beat. */
async function rawPixelKnn(bank: Dataset, query: Dataset): Promise<number> {
  const pixels = async (ds: Dataset) => {
    const raw = await ds.read(Int32Array.from({ length: ds.size }, (_, i) => i));
    return { data: Float32Array.from(raw.pixels), dim: ds.height * ds.width * ds.channels, labels: raw.labels };
  };
  const b = await pixels(bank);
  const q = await pixels(query);
  const nb = await knnNeighbours({ data: b.data, dim: b.dim }, { data: q.data, dim: q.dim }, { k: 200 });
  return knnVote(nb, b.labels, q.labels, { k: 200, t: 0.1 }).top1;
}

/** Full kNN and linear probe of a finished run's backbone on `split`, on features extracted once. */
async function evaluateRun(checkpoint: string, c: RunConfig, linearEpochs: number, subset: number | null, split: EvalSplit): Promise<{ knn: { top1: number; top5: number }; linear: { top1: number; top5: number } }> {
  const { bank: train, query: test } = await evalSets(c, split, subset);
  const normalize = runNormalization(c);
  const net = loadBackbone(checkpoint);
  try {
    const transform = { size: c.imageSize, normalize };
    const tr = await extractFeatures(net, train, { transform, phase: 'train features' });
    const te = await extractFeatures(net, test, { transform, phase: `${split} features` });
    const knn = await knnClassify(tr, tr.labels, te, te.labels, { k: 200, t: 0.1, numClasses: train.numClasses });
    const linear = await trainLinearOnFeatures(tr, te, { epochs: linearEpochs, numClasses: train.numClasses, seed: c.seed });
    return { knn: { top1: knn.top1, top5: knn.top5 }, linear: { top1: linear.top1, top5: linear.top5 } };
  } finally {
    net.dispose();
  }
}

/** The command that trains this run alone (--no-validation for a short-profile run without the split). */
export function trainCommand(c: RunConfig): string {
  const noValidation = c.validation === null && c.profile !== 'paper' ? ' --no-validation' : '';
  return `npm run train -- --framework ${c.framework} --method ${c.view.method} --dataset ${c.dataset} --profile ${c.profile} --seed ${c.seed}${noValidation}`;
}

export async function reproduce(o: ReproduceArgs, signal?: AbortSignal): Promise<Results> {
  const threads = laneThreads(o.lanes);
  // The evaluations run here, beside the other lane's pretraining: the same thread count.
  const report = await initBackend({ threads });
  const backendReport = formatBackendReport(report);
  const backend = `${report.name}, ${report.threads} thread${report.threads === 1 ? '' : 's'}${o.lanes > 1 ? ` per run, ${o.lanes} runs side by side` : ''}`;
  console.error(backendReport);
  const split: EvalSplit = o.validate ? 'validation' : 'test';
  const resultsFile = resultsPath(o.out, split);
  const previous: Results | null = fs.existsSync(resultsFile) ? readResults(resultsFile) : null;
  if (previous && (previous.format !== RESULTS_FORMAT || previous.profile !== o.profile || previous.evalSubset !== o.evalSubset || previous.linearEpochs !== o.linearEpochs || splitOf(previous) !== split || (previous.budgetEpochs ?? null) !== o.epochs)) {
    throw new Error(`${resultsFile} holds ${previous.format} results of profile ${previous.profile} (${splitOf(previous)} split, eval subset ${previous.evalSubset}, ${previous.linearEpochs} linear epochs, ${previous.budgetEpochs ? `${previous.budgetEpochs} epochs per run` : "the profile's epochs"}); choose another --out or remove it`);
  }
  const now = () => new Date().toISOString();
  let rawPixels = previous ? previous.rawPixelKnn : split === 'test' && !o.evalSubset ? RAW_PIXEL_KNN : null;
  if (!previous && split === 'validation') {
    // Measured once per results file: the raw-pixel reference on the same bank and validation queries.
    const { bank, query } = await evalSets(pretrainConfig(o.frameworks[0], DATASET, o.profile), split, o.evalSubset);
    rawPixels = await rawPixelKnn(bank, query);
    console.error(`raw-pixel kNN on ${query.size} validation images (bank ${bank.size}): ${rawPixels.toFixed(2)} %`);
  }
  const results: Results = {
    format: RESULTS_FORMAT, dataset: DATASET, profile: o.profile, backend, backendReport, evalSplit: split, budgetEpochs: o.epochs, rawPixelKnn: rawPixels, evalSubset: o.evalSubset, linearEpochs: o.linearEpochs,
    startedAt: previous?.startedAt ?? now(), updatedAt: now(), runs: previous?.runs ?? [],
  };
  const save = () => {
    results.updatedAt = now();
    results.runs.sort(runOrder);
    fs.mkdirSync(o.out, { recursive: true });
    writeJsonAtomic(resultsFile, results);
    writeReports(results, resultsFile);
  };

  let evaluations: Promise<unknown> = Promise.resolve();
  const runOne = async (fw: FrameworkName, method: ViewMethod, seed: number): Promise<boolean> => {
    const config = pretrainConfig(fw, DATASET, o.profile, { method, seed, ...(o.epochs === null ? {} : { epochs: o.epochs }) });
    const known = results.runs.find((r) => r.framework === fw && r.method === method && r.seed === seed);
    if (known && JSON.stringify(known.config) === JSON.stringify(config)) return true;
    if (known) throw new Error(`${resultsFile}: ${fw}/${method}/seed ${seed} was run with another configuration than the ${o.profile} preset now gives; use another --out`);
    if (signal?.aborted) return false;
    const runDir = defaultRunDir(config, o.runsRoot);
    // The trainer lets a run be extended; a reproduction must not: a cosine schedule stretched
    // from 16 to 32 epochs after the fact is not a 32-epoch run.
    const stored = path.join(runDir, 'config.json');
    const storedEpochs = fs.existsSync(stored) ? readRunConfig(stored).epochs : config.epochs;
    if (storedEpochs !== config.epochs) {
      throw new Error(`${runDir} holds a run of ${storedEpochs} epochs; the ${o.profile} preset${o.epochs === null ? '' : ` with --epochs ${o.epochs}`} trains ${fw} for ${config.epochs}. A reproduction never extends a run's schedule: move that directory away or choose another --runs-root`);
    }
    const resume = fs.existsSync(path.join(runDir, 'checkpoint.safetensors'));
    console.error(`\n== ${fw} + ${method}, seed ${seed} → ${runDir}${resume ? ' (resuming)' : ''}`);
    const summary = await pretrainInChild(config, runDir, threads, signal);
    const trainSeconds = earlierSeconds(runDir) + summary.seconds;
    writeJsonAtomic(path.join(runDir, SECONDS_FILE), { seconds: trainSeconds });
    if (summary.status !== 'completed') return false;
    const log = readRunLog(runDir);
    // One evaluation at a time: they share this process (and its threads).
    const evaluated = evaluations.then(async () => {
      const t0 = Date.now();
      return { ev: await evaluateRun(summary.checkpoint, config, o.linearEpochs, o.evalSubset, split), evalSeconds: (Date.now() - t0) / 1000 };
    });
    evaluations = evaluated.catch(() => undefined);
    const { ev, evalSeconds } = await evaluated;
    const last = log.steps[log.steps.length - 1];
    const monitor = log.epochs.filter((e) => typeof e.knnTop1 === 'number');
    const runOut = path.join(o.out, runName(config));
    fs.mkdirSync(runOut, { recursive: true });
    for (const f of ['config.json', 'log.jsonl']) fs.copyFileSync(path.join(runDir, f), path.join(runOut, f));
    results.runs.push({
      framework: fw, method, seed, runDir: path.relative(o.out, runOut),
      monitorKnnTop1: monitor.length ? monitor[monitor.length - 1].knnTop1! : null,
      knnTop1: ev.knn.top1, knnTop5: ev.knn.top5, linearTop1: ev.linear.top1, linearTop5: ev.linear.top5,
      trainSeconds, evalSeconds, finalEmbeddingStd: last?.embeddingStd ?? null,
      backend, command: trainCommand(config), config,
    });
    save();
    console.error(`   kNN ${ev.knn.top1.toFixed(2)} %, linear ${ev.linear.top1.toFixed(2)} % (train ${minutes(summary.seconds)}, eval ${minutes(evalSeconds)}); tensors ${tf.memory().numTensors}`);
    return true;
  };

  // Every seed's runs through `lanes` workers, seed by seed (jobOrder); a failure or a stop
  // lets the other lanes finish their current run, then stops them.
  const queue = jobOrder(o.frameworks, o.seeds);
  let stopped = false;
  const worker = async () => {
    for (let job = queue.shift(); job && !stopped; job = queue.shift()) {
      try {
        if (!(await runOne(job.fw, job.method, job.seed))) stopped = true;
      } catch (e) {
        stopped = true;
        throw e;
      }
    }
  };
  const workers = await Promise.allSettled(Array.from({ length: Math.max(1, o.lanes) }, worker));
  const failed = workers.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (failed) {
    save();
    throw failed.reason;
  }
  save();
  return results;
}

/** results.json for the test split, results-validation.json for the validation split. */
export function resultsPath(out: string, split: EvalSplit): string {
  return path.join(out, split === 'test' ? 'results.json' : 'results-validation.json');
}

/** A results file, its configs in today's field names (storedRunConfig); version 1 files read as test-split results. */
export function readResults(file: string): Results {
  let r: Results;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8')) as Results;
  } catch (e) {
    throw new Error(`${file}: not a readable results file (${(e as Error).message})`);
  }
  if (r.format !== RESULTS_FORMAT && r.format !== FORMAT_V1) throw new Error(`${file}: format ${JSON.stringify(r.format)}, expected ${RESULTS_FORMAT}`);
  for (const x of r.runs) x.config = storedRunConfig(x.config, file);
  return r;
}

/** Framework, then seed, then baseline before MixMask: the table's order whatever finished first. */
function runOrder(a: RunResult, b: RunResult): number {
  return REPRO_FRAMEWORKS.indexOf(a.framework) - REPRO_FRAMEWORKS.indexOf(b.framework) || a.seed - b.seed || METHODS.indexOf(a.method) - METHODS.indexOf(b.method);
}

/** Figure 1: loss and kNN monitor per framework, baseline blue, MixMask red; with several seeds the mean curves and min–max bands. */
export function figure1(r: Results, out: string): PlotlyFigure {
  const runs: CurveRun[] = r.runs.map((x) => ({ group: GROUP_NAMES[x.framework], method: x.method, log: readRunLog(path.join(out, x.runDir)) }));
  const seeds = [...new Set(r.runs.map((x) => x.seed))].sort((a, b) => a - b);
  const monitors = [...new Set(r.runs.map((x) => monitorSplit(x.config)))].join(' / ');
  return trainingCurvesFigure(runs, {
    title: `Figure 1, Fashion-MNIST, ${r.profile} profile, ${seeds.length === 1 ? `seed ${seeds[0]}` : `${seeds.length} seeds (mean, min–max)`}: loss and kNN monitor (${monitors})`,
    groups: REPRO_FRAMEWORKS.map((f) => GROUP_NAMES[f]).filter((g) => runs.some((x) => x.group === g)),
    loss: 'epoch',
    bands: seeds.length > 1,
  });
}

/** figure1.html and its PNG (when a Chromium is found). */
export async function writeFigure(r: Results, out: string): Promise<void> {
  const fig = figure1(r, out);
  const html = path.join(out, 'figure1.html');
  writeFigureHtml(html, fig, 'Figure 1 — Fashion-MNIST');
  const chromium = findChromium();
  if (chromium) await screenshot(chromium, html, path.join(out, 'figure1.png'));
  else console.error('no Chromium found: figure1.png not written (figure1.html is)');
}

async function main(): Promise<number> {
  if (process.argv[2] === PRETRAIN_ONE) return pretrainOne(process.argv.slice(3));
  let args: ReproduceArgs | 'help';
  try {
    args = parseReproduceArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`reproduce: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (args.regenerate) {
    const r = readResults(args.regenerate);
    for (const f of writeReports(r, args.regenerate)) console.error(`wrote ${f}`);
    return 0;
  }
  const signal = stopSignal('stopping after this step with a checkpoint; run the same command again to resume');
  const t0 = Date.now();
  const r = await reproduce(args, signal);
  if (args.figure && !args.validate && !signal.aborted) await writeFigure(r, args.out);
  console.log(resultsMarkdown(r));
  console.error(`wall time of this call: ${minutes((Date.now() - t0) / 1000)}`);
  return 0;
}

runCli('reproduce', module, main);
