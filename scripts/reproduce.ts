/**
 * `npm run reproduce` — Figure 1 on real data: every framework (MoCo v2, SimCLR, BYOL, SimSiam)
 * pretrained on Fashion-MNIST as baseline and with MixMask (block mask, grid 8, ratio 0.5), same
 * seed and budget per pair, then each encoder evaluated by kNN (k = 200, T = 0.1, the whole
 * train split as bank, the whole test split) and a linear probe on frozen features. A pair whose
 * kNN difference is under one point is run again with the next seed. Writes into `--out`
 * (default reports/fashion-mnist-<profile>): results.json (after every run, atomically, so an
 * interrupted reproduction resumes where it stopped), results.md, figure1.html/png and each
 * run's config.json + log.jsonl in <out>/<run name>/ — the layout `defaultRunDir` gives under
 * reports/, so the notebooks find these runs (lib/notebook runRoots). Checkpoints stay in runs/.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import { formatBackendReport, initBackend, parseThreads } from '../lib/backend';
import { loadSplits } from '../lib/data';
import { runNormalization } from '../lib/data/recipes';
import { type Dataset, SubsetDataset } from '../lib/data';
import { extractFeatures, knnClassify, randomIndices, trainLinearOnFeatures } from '../lib/eval';
import type { FrameworkName } from '../lib/frameworks';
import { writeFileAtomic, writeJsonAtomic } from '../lib/io/atomic';
import type { ViewMethod } from '../lib/masks/views';
import { findChromium, readRunLog, screenshot, trainingCurvesFigure, writeFigureHtml, type CurveRun } from '../lib/plot';
import { PROFILES, type Profile, type RunConfig, pretrainConfig } from '../lib/presets';
import { loadBackbone } from '../lib/train/checkpoint';
import { defaultRunDir, startRun } from '../lib/experiments';
import { storedRunConfig } from '../lib/train/config';
import type { TrainSummary } from '../lib/train/trainer';
import { Args, runCli, stopSignal } from './cli';

export const REPRO_FRAMEWORKS: readonly FrameworkName[] = ['moco-v2', 'simclr', 'byol', 'simsiam'];
const GROUP_NAMES: Record<string, string> = { 'moco-v2': 'MoCo v2', simclr: 'SimCLR', byol: 'BYOL', simsiam: 'SimSiam' };
const METHODS: readonly ViewMethod[] = ['none', 'mixmask'];
const DATASET = 'fashion-mnist' as const;
/** Raw-pixel kNN on Fashion-MNIST at k = 200, T = 0.1 (docs/method.md#knn-monitor): every encoder must beat it. */
export const RAW_PIXEL_KNN = 78.85;
/** A pair whose kNN top-1 differs by less than this many points gets another seed. */
export const RESEED_BELOW = 1;
export const RESULTS_FORMAT = 'mixmask-ts-reproduction/1';

export interface RunResult {
  framework: FrameworkName;
  method: ViewMethod;
  seed: number;
  runDir: string;
  /** Last kNN monitor reading (subsets, as logged during training). */
  monitorKnnTop1: number | null;
  /** Final kNN top-1 / top-5 (%) with the whole train split as bank and the whole test split. */
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
  rawPixelKnn: number;
  /** Final evaluation on random subsets of this many train / test images (null: the whole splits). */
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
 * The order runs are handed to the lanes: every MixMask run (about 1.4× its baseline's time)
 * before the baselines, so that the lanes finish together instead of one lane running the last
 * long run alone (at the cpu profile that left a lane idle for 22 of 108 minutes).
 */
export function jobOrder(frameworks: readonly FrameworkName[]): { fw: FrameworkName; method: ViewMethod }[] {
  return [...METHODS].reverse().flatMap((method) => frameworks.map((fw) => ({ fw, method })));
}

/** Frameworks whose every finished pair so far differs by less than RESEED_BELOW kNN points and that have fewer than `maxSeeds` seeds. */
export function needsAnotherSeed(runs: readonly RunResult[], frameworks: readonly FrameworkName[], maxSeeds: number): FrameworkName[] {
  return frameworks.filter((fw) => {
    const ps = pairs(runs).filter((p) => p.framework === fw);
    return ps.length > 0 && ps.length < maxSeeds && ps.every((p) => Math.abs(p.knnDiff) < RESEED_BELOW);
  });
}

const fmt = (v: number | null, d = 2) => (v === null ? '–' : v.toFixed(d));
const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;

/** results.md: one row per run, then the pairs with their differences, then the totals. */
export function resultsMarkdown(r: Results): string {
  const rows = [...r.runs].sort((a, b) => REPRO_FRAMEWORKS.indexOf(a.framework) - REPRO_FRAMEWORKS.indexOf(b.framework) || a.seed - b.seed || METHODS.indexOf(a.method) - METHODS.indexOf(b.method));
  const c0 = rows[0]?.config;
  // Epochs may differ between frameworks (never within a pair): the first row's, then those that differ by name.
  const differing = new Map(rows.filter((x) => x.config.epochs !== c0?.epochs).map((x) => [x.framework, x.config.epochs]));
  const epochsText = `${c0?.epochs} epochs${differing.size ? ` (${[...differing].map(([fw, e]) => `${GROUP_NAMES[fw] ?? fw}: ${e}`).join(', ')})` : ''}`;
  const lines = [
    `# Figure 1 reproduction on Fashion-MNIST (${r.profile} profile)`,
    '',
    c0
      ? `Budget per run: ResNet-${c0.backbone.depth} (CIFAR stem) at width ${c0.backbone.width}, ${c0.trainSubset?.toLocaleString('en-US') ?? 'all'} training images, ${epochsText} at batch ${c0.batchSize}, ${c0.imageSize}×${c0.imageSize} px; kNN monitor every ${c0.knn.every === 1 ? 'epoch' : `${c0.knn.every} epochs`} on ${c0.knn.bankSubset?.toLocaleString('en-US') ?? 'all'} bank / ${c0.knn.querySubset?.toLocaleString('en-US') ?? 'all'} query images. MixMask: ${c0.view.maskType ?? 'block'} mask, grid ${c0.view.gridSize}, ratio ${c0.view.ratio}.`
      : '',
    r.evalSubset
      ? `Final evaluation on random subsets of ${r.evalSubset} train and test images (a quick check, not comparable with the raw-pixel reference ${RAW_PIXEL_KNN}%).`
      : `Final evaluation: kNN (cosine, k = 200, T = 0.1) with all 60,000 training images as bank on all 10,000 test images; linear probe (SGD lr 30, momentum 0.9, ${r.linearEpochs} epochs on frozen features, lr × 0.1 at 60 % and 80 % of them). Raw-pixel kNN at the same setting: ${RAW_PIXEL_KNN}%.`,
    `Backend: ${[...new Set(r.runs.map((x) => x.backend))].join('; ') || r.backend}. All of it: \`npm run reproduce -- --profile ${r.profile}\`.`,
    '',
    '| framework | method | seed | epochs | kNN top-1 | linear top-1 | beats raw pixels | last monitor kNN | embedding std | train time | eval time | command |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((x) =>
      `| ${GROUP_NAMES[x.framework] ?? x.framework} | ${x.method === 'none' ? 'baseline' : 'MixMask'} | ${x.seed} | ${x.config.epochs} | ${fmt(x.knnTop1)} | ${fmt(x.linearTop1)} | ${x.knnTop1 > RAW_PIXEL_KNN ? 'yes' : '**no**'} | ${fmt(x.monitorKnnTop1)} | ${fmt(x.finalEmbeddingStd, 4)} | ${minutes(x.trainSeconds)} | ${minutes(x.evalSeconds)} | \`${x.command}\` |`),
    '',
    '## MixMask − baseline',
    '',
    '| framework | seed | kNN baseline → MixMask | Δ kNN | linear baseline → MixMask | Δ linear |',
    '|---|---|---|---|---|---|',
    ...pairs(r.runs).map((p) => `| ${GROUP_NAMES[p.framework]} | ${p.seed} | ${fmt(p.baseline.knnTop1)} → ${fmt(p.mixmask.knnTop1)} | ${signed(p.knnDiff)} | ${fmt(p.baseline.linearTop1)} → ${fmt(p.mixmask.linearTop1)} | ${signed(p.linearDiff)} |`),
    '',
  ];
  const byFw = REPRO_FRAMEWORKS.map((fw) => pairs(r.runs).filter((p) => p.framework === fw)).filter((ps) => ps.length > 1);
  if (byFw.length) {
    lines.push('Mean over seeds:', '', '| framework | seeds | mean Δ kNN | mean Δ linear |', '|---|---|---|---|');
    for (const ps of byFw) {
      const mean = (f: (p: PairSummary) => number) => ps.reduce((s, p) => s + f(p), 0) / ps.length;
      lines.push(`| ${GROUP_NAMES[ps[0].framework]} | ${ps.map((p) => p.seed).join(', ')} | ${signed(mean((p) => p.knnDiff))} | ${signed(mean((p) => p.linearDiff))} |`);
    }
    lines.push('');
  }
  const train = r.runs.reduce((s, x) => s + x.trainSeconds, 0);
  const ev = r.runs.reduce((s, x) => s + x.evalSeconds, 0);
  const first = r.runs.filter((x) => x.seed === Math.min(...r.runs.map((y) => y.seed)));
  lines.push(
    `Total: ${r.runs.length} runs, pretraining ${minutes(train)} (the first eight: ${minutes(first.reduce((s, x) => s + x.trainSeconds, 0))}), evaluation ${minutes(ev)}.`,
    '',
  );
  return lines.join('\n');
}

export interface ReproduceArgs {
  profile: Profile;
  out: string;
  runsRoot: string;
  frameworks: FrameworkName[];
  maxSeeds: number;
  linearEpochs: number;
  /** Evaluate on a seeded random subset of this many train and test images (null: all; quick checks). */
  evalSubset: number | null;
  figure: boolean;
  /** Runs pretrained side by side, each in its own process on cores/lanes threads. */
  lanes: number;
}

export const USAGE = `usage: npm run reproduce -- [--profile cpu|smoke] [options]
  --profile <p>           training budget (default cpu: see lib/presets)
  --out <dir>             results folder (default reports/fashion-mnist-<profile>)
  --runs-root <dir>       where run directories and checkpoints go (default runs)
  --frameworks <a,b>      subset of ${REPRO_FRAMEWORKS.join(',')} (default all)
  --max-seeds <n>         seeds per framework at most, when pairs differ by < ${RESEED_BELOW} kNN point (default 2)
  --linear-epochs <n>     linear-probe epochs (default 100)
  --eval-subset <n>       final evaluation on n random train and n random test images (default: all)
  --lanes <n>             runs trained side by side, each on cores/n threads (default ${defaultLanes()} here)
  --no-figure             skip figure1.html/png`;

export function parseReproduceArgs(argv: readonly string[]): ReproduceArgs | 'help' {
  const a = new Args(argv, { options: ['--profile', '--out', '--runs-root', '--frameworks', '--max-seeds', '--linear-epochs', '--eval-subset', '--lanes'], flags: ['--no-figure'] });
  if (a.help) return 'help';
  const profile = a.oneOf('--profile', PROFILES) ?? 'cpu';
  const fws = a.string('--frameworks');
  const frameworks = fws ? fws.split(',').map((f) => f.trim()) : [...REPRO_FRAMEWORKS];
  for (const f of frameworks) {
    if (!REPRO_FRAMEWORKS.includes(f as FrameworkName)) throw new Error(`--frameworks: '${f}' is not one of ${REPRO_FRAMEWORKS.join(', ')}`);
  }
  return {
    profile,
    out: a.string('--out') ?? path.join('reports', `${DATASET}-${profile}`),
    runsRoot: a.string('--runs-root') ?? 'runs',
    frameworks: frameworks as FrameworkName[],
    maxSeeds: a.int('--max-seeds', 1) ?? 2,
    linearEpochs: a.int('--linear-epochs', 1) ?? 100,
    evalSubset: a.int('--eval-subset', 1) ?? null,
    figure: !a.flag('--no-figure'),
    lanes: a.int('--lanes', 1) ?? defaultLanes(),
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

/** Full kNN and linear probe of a finished run's backbone, on features extracted once. */
async function evaluateRun(checkpoint: string, c: RunConfig, linearEpochs: number, subset: number | null): Promise<{ knn: { top1: number; top5: number }; linear: { top1: number; top5: number } }> {
  const splits = await loadSplits(c.dataset);
  const pick = (ds: Dataset, seed: number) => (subset && subset < ds.size ? new SubsetDataset(ds, randomIndices(ds.size, subset, seed)) : ds);
  const train = pick(splits.train, 21);
  const test = pick(splits.test, 22);
  const normalize = runNormalization(c);
  const net = loadBackbone(checkpoint);
  try {
    const transform = { size: c.imageSize, normalize };
    const tr = await extractFeatures(net, train, { transform, phase: 'train features' });
    const te = await extractFeatures(net, test, { transform, phase: 'test features' });
    const knn = await knnClassify(tr, tr.labels, te, te.labels, { k: 200, t: 0.1, numClasses: train.numClasses });
    const linear = await trainLinearOnFeatures(tr, te, { epochs: linearEpochs, numClasses: train.numClasses, seed: c.seed });
    return { knn: { top1: knn.top1, top5: knn.top5 }, linear: { top1: linear.top1, top5: linear.top5 } };
  } finally {
    net.dispose();
  }
}

function trainCommand(c: RunConfig): string {
  return `npm run train -- --framework ${c.framework} --method ${c.view.method} --dataset ${c.dataset} --profile ${c.profile} --seed ${c.seed}`;
}

export async function reproduce(o: ReproduceArgs, signal?: AbortSignal): Promise<Results> {
  const threads = laneThreads(o.lanes);
  // The evaluations run here, beside the other lane's pretraining: the same thread count.
  const report = await initBackend({ threads });
  const backendReport = formatBackendReport(report);
  const backend = `${report.name}, ${report.threads} thread${report.threads === 1 ? '' : 's'}${o.lanes > 1 ? ` per run, ${o.lanes} runs side by side` : ''}`;
  console.error(backendReport);
  const resultsFile = path.join(o.out, 'results.json');
  const previous: Results | null = fs.existsSync(resultsFile) ? (JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as Results) : null;
  // Configs stored before a field was renamed, in today's names (storedRunConfig).
  for (const r of previous?.runs ?? []) r.config = storedRunConfig(r.config, resultsFile);
  if (previous && (previous.format !== RESULTS_FORMAT || previous.profile !== o.profile || previous.evalSubset !== o.evalSubset || previous.linearEpochs !== o.linearEpochs)) {
    throw new Error(`${resultsFile} holds ${previous.format} results of profile ${previous.profile} (eval subset ${previous.evalSubset}, ${previous.linearEpochs} linear epochs); choose another --out or remove it`);
  }
  const now = () => new Date().toISOString();
  const results: Results = {
    format: RESULTS_FORMAT, dataset: DATASET, profile: o.profile, backend, backendReport, rawPixelKnn: RAW_PIXEL_KNN, evalSubset: o.evalSubset, linearEpochs: o.linearEpochs,
    startedAt: previous?.startedAt ?? now(), updatedAt: now(), runs: previous?.runs ?? [],
  };
  const save = () => {
    results.updatedAt = now();
    results.runs.sort(runOrder);
    fs.mkdirSync(o.out, { recursive: true });
    writeJsonAtomic(resultsFile, results);
    writeFileAtomic(path.join(o.out, 'results.md'), resultsMarkdown(results));
  };

  let evaluations: Promise<unknown> = Promise.resolve();
  const runOne = async (fw: FrameworkName, method: ViewMethod, seed: number): Promise<boolean> => {
    const config = pretrainConfig(fw, DATASET, o.profile, { method, seed });
    const known = results.runs.find((r) => r.framework === fw && r.method === method && r.seed === seed);
    if (known && JSON.stringify(known.config) === JSON.stringify(config)) return true;
    if (known) throw new Error(`${resultsFile}: ${fw}/${method}/seed ${seed} was run with another configuration than the ${o.profile} preset now gives; use another --out`);
    if (signal?.aborted) return false;
    const runDir = defaultRunDir(config, o.runsRoot);
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
      return { ev: await evaluateRun(summary.checkpoint, config, o.linearEpochs, o.evalSubset), evalSeconds: (Date.now() - t0) / 1000 };
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

  // Each seed's runs go through `lanes` workers; the next seed is decided once all are in.
  for (let seed = 0; seed < o.maxSeeds; seed++) {
    const todo = seed === 0 ? o.frameworks : needsAnotherSeed(results.runs, o.frameworks, seed + 1);
    const queue = jobOrder(todo);
    let stopped = false;
    const worker = async () => {
      for (let job = queue.shift(); job && !stopped; job = queue.shift()) {
        try {
          if (!(await runOne(job.fw, job.method, seed))) stopped = true;
        } catch (e) {
          stopped = true; // the other lanes finish their current run, then stop
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
    if (stopped) break;
  }
  save();
  return results;
}

/** Framework, then seed, then baseline before MixMask: the table's order whatever finished first. */
function runOrder(a: RunResult, b: RunResult): number {
  return REPRO_FRAMEWORKS.indexOf(a.framework) - REPRO_FRAMEWORKS.indexOf(b.framework) || a.seed - b.seed || METHODS.indexOf(a.method) - METHODS.indexOf(b.method);
}

/** figure1.html (Figure 1: loss and kNN monitor per framework, baseline blue, MixMask red) and its PNG. */
export async function writeFigure(r: Results, out: string): Promise<void> {
  const runs: CurveRun[] = r.runs
    .filter((x) => x.seed === 0)
    .map((x) => ({ group: GROUP_NAMES[x.framework], method: x.method, log: readRunLog(path.join(out, x.runDir)) }));
  const fig = trainingCurvesFigure(runs, {
    title: `Figure 1 on Fashion-MNIST (${r.profile} profile, seed 0): training loss and kNN monitor`,
    groups: REPRO_FRAMEWORKS.map((f) => GROUP_NAMES[f]).filter((g) => runs.some((x) => x.group === g)),
    loss: 'epoch',
  });
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
  const signal = stopSignal('stopping after this step with a checkpoint; run the same command again to resume');
  const t0 = Date.now();
  const r = await reproduce(args, signal);
  if (args.figure && !signal.aborted) await writeFigure(r, args.out);
  console.log(resultsMarkdown(r));
  console.error(`wall time of this call: ${minutes((Date.now() - t0) / 1000)}`);
  return 0;
}

runCli('reproduce', module, main);
