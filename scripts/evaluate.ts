/**
 * `npm run eval -- --checkpoint runs/x/last.safetensors --dataset fashion-mnist --protocol knn`
 * evaluates a checkpoint's backbone (kNN, linear probe, 1 % / 10 % semi-supervised, 100 %
 * fine-tuning) and writes one JSON result (atomically: temp file + rename) that the notebooks
 * read. `--help` lists the options.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type BackendReport, initBackend } from '../lib/backend';
import { DATASET_NAMES, type DatasetName, type Dataset, NORMALIZATION, type NormalizeSpec, loadSplits } from '../lib/data';
import { writeJsonAtomic } from '../lib/io/atomic';
import { Args, runCli } from './cli';
import {
  type EvalTransform,
  FINETUNE_PRESETS,
  fineTune,
  knnMonitor,
  linearProbe,
  type ProgressInfo,
  randomIndices,
  SubsetDataset,
} from '../lib/eval';
import { loadBackbone, loadCheckpoint } from '../lib/train/checkpoint';

export const PROTOCOLS = ['knn', 'linear', 'semi1', 'semi10', 'finetune'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const DATASETS = DATASET_NAMES;
export type EvalDataset = DatasetName;
export const RESULT_FORMAT = 'mixmask-ts-eval/1';

export interface EvalArgs {
  checkpoint: string;
  dataset: EvalDataset;
  protocol: Protocol;
  out: string | null;
  epochs: number | null;
  limitTrain: number | null;
  limitTest: number | null;
  batchSize: number | null;
  evalBatchSize: number;
  k: number;
  t: number;
  lr: number | null;
  backboneLr: number | null;
  classifierLr: number | null;
  seed: number;
  subsetSeed: number;
  size: number | null;
  normalize: string | null;
  augment: boolean;
  quiet: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run eval -- --checkpoint <file.safetensors> --dataset <${DATASETS.join('|')}> --protocol <${PROTOCOLS.join('|')}> [options]
  --out <file.json>         result file (default: <checkpoint dir>/eval-<protocol>-<dataset>.json)
  --epochs <n>              training epochs (linear: 100, semi1/semi10/finetune: 20; step milestones scale with it)
  --limit-train <n>         use n training images (seeded random subset; quick runs)
  --limit-test <n>          use n test images (seeded random subset)
  --batch-size <n>          training batch (default 256)
  --eval-batch-size <n>     images per forward pass when extracting features (default 256)
  --k <n> --t <x>           kNN neighbours and temperature (default 200, 0.1)
  --lr <x>                  linear-probe learning rate (default 30)
  --backbone-lr <x>         fine-tuning backbone rate (default 0.002 semi, 0.001 finetune)
  --classifier-lr <x>       fine-tuning classifier rate (default 0.5 semi, 0.05 finetune)
  --seed <n>                classifier init / batch order / augmentation seed (default 0)
  --subset-seed <n>         seed of the class-balanced 1 % / 10 % label subset (default 0)
  --size <n>                input side in pixels (default: the checkpoint's imageSize, else the dataset's)
  --normalize <name|none>   pixel normalisation: none, ${Object.keys(NORMALIZATION).join(', ')} (default: the checkpoint's, else none)
  --no-augment              fine-tune without random-resized-crop + flip
  --quiet                   no progress display`;

/** Parses and validates the command line; throws with a message naming the bad flag. */
export function parseArgs(argv: readonly string[]): EvalArgs {
  const args = new Args(argv, {
    options: [
      '--checkpoint', '--dataset', '--protocol', '--out', '--epochs', '--limit-train', '--limit-test', '--batch-size',
      '--eval-batch-size', '--k', '--t', '--lr', '--backbone-lr', '--classifier-lr', '--seed', '--subset-seed', '--size', '--normalize',
    ],
    flags: ['--no-augment', '--quiet'],
  });
  const a: EvalArgs = {
    checkpoint: args.string('--checkpoint') ?? '',
    dataset: 'fashion-mnist',
    protocol: 'knn',
    out: args.string('--out') ?? null,
    epochs: args.int('--epochs', 1) ?? null,
    limitTrain: args.int('--limit-train', 1) ?? null,
    limitTest: args.int('--limit-test', 1) ?? null,
    batchSize: args.int('--batch-size', 2) ?? null,
    evalBatchSize: args.int('--eval-batch-size', 1) ?? 256,
    k: args.int('--k', 1) ?? 200,
    t: args.number('--t') ?? 0.1,
    lr: args.number('--lr') ?? null,
    backboneLr: args.number('--backbone-lr') ?? null,
    classifierLr: args.number('--classifier-lr') ?? null,
    seed: args.int('--seed', 0) ?? 0,
    subsetSeed: args.int('--subset-seed', 0) ?? 0,
    size: args.int('--size', 1) ?? null,
    normalize: args.string('--normalize') ?? null,
    augment: !args.flag('--no-augment'),
    quiet: args.flag('--quiet'),
    help: args.help,
  };
  if (a.help) return a;
  if (!a.checkpoint) throw new Error('--checkpoint <file.safetensors> is required');
  a.dataset = args.oneOf('--dataset', DATASETS) ?? fail(`--dataset is required (one of ${DATASETS.join(', ')})`);
  a.protocol = args.oneOf('--protocol', PROTOCOLS) ?? fail(`--protocol is required (one of ${PROTOCOLS.join(', ')})`);
  if (a.normalize !== null && a.normalize !== 'none' && !(a.normalize in NORMALIZATION)) {
    throw new Error(`--normalize must be none or one of ${Object.keys(NORMALIZATION).join(', ')}, got '${a.normalize}'`);
  }
  if (!fs.existsSync(a.checkpoint)) throw new Error(`--checkpoint: file ${a.checkpoint} does not exist`);
  return a;
}

function fail(message: string): never {
  throw new Error(message);
}

function isSpec(v: unknown): v is NormalizeSpec {
  const s = v as NormalizeSpec;
  return !!s && Array.isArray(s.mean) && Array.isArray(s.std) && s.mean.length === 3 && s.std.length === 3;
}

/** Input size and normalisation: flags first, then what the checkpoint's run config recorded. */
function resolveTransform(args: EvalArgs, meta: Record<string, unknown>, train: Dataset): EvalTransform {
  const config = (meta.config ?? {}) as Record<string, unknown>;
  const metaSize = typeof config.imageSize === 'number' ? config.imageSize : null;
  let normalize: NormalizeSpec | null = null;
  if (args.normalize !== null) {
    normalize = args.normalize === 'none' ? null : NORMALIZATION[args.normalize as keyof typeof NORMALIZATION];
  } else {
    const saved = meta.normalize ?? config.normalize;
    if (isSpec(saved)) normalize = saved;
    else if (typeof saved === 'string' && saved in NORMALIZATION) normalize = NORMALIZATION[saved as keyof typeof NORMALIZATION];
  }
  return { size: args.size ?? metaSize ?? Math.min(train.height, train.width), normalize };
}

/** One-line progress on a terminal (\r), a line per finished phase otherwise. */
function progressPrinter(quiet: boolean): (p: ProgressInfo) => void {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let lastPhase = '';
  return (p) => {
    if (quiet) return;
    const finished = p.done >= p.total;
    const now = Date.now();
    const phase = `${p.task} ${p.phase}${p.epoch !== undefined ? ` epoch ${p.epoch}/${p.epochs}` : ''}`;
    if (tty) {
      if (!finished && now - last < 100 && phase === lastPhase) return;
      last = now;
      lastPhase = phase;
      const width = 30;
      const filled = Math.round((width * p.done) / Math.max(1, p.total));
      const loss = p.loss !== undefined ? ` loss ${p.loss.toFixed(4)}` : '';
      process.stderr.write(`\r${phase.padEnd(36)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total}${loss}\x1b[K`);
      if (finished && (p.epoch === undefined || p.epoch === p.epochs)) process.stderr.write('\n');
    } else if (finished && (p.epoch === undefined || p.epoch === p.epochs || p.epoch % 10 === 0)) {
      process.stderr.write(`${phase}: ${p.done}/${p.total}${p.loss !== undefined ? ` loss ${p.loss.toFixed(4)}` : ''}\n`);
    }
  };
}

export async function evaluate(args: EvalArgs, backend: BackendReport): Promise<{ out: string; result: Record<string, unknown> }> {
  const ckpt = loadCheckpoint(args.checkpoint);
  const meta = ckpt.meta as Record<string, unknown>;
  ckpt.tensors.clear();
  const { train: fullTrain, test: fullTest } = await loadSplits(args.dataset);
  const train = args.limitTrain !== null && args.limitTrain < fullTrain.size ? new SubsetDataset(fullTrain, randomIndices(fullTrain.size, args.limitTrain, args.seed)) : fullTrain;
  const test = args.limitTest !== null && args.limitTest < fullTest.size ? new SubsetDataset(fullTest, randomIndices(fullTest.size, args.limitTest, args.seed + 1)) : fullTest;
  const transform = resolveTransform(args, meta, train);
  const onProgress = progressPrinter(args.quiet);
  const backbone = loadBackbone(args.checkpoint);
  const t0 = Date.now();
  let result: Record<string, unknown>;
  let options: Record<string, unknown>;
  try {
    switch (args.protocol) {
      case 'knn': {
        options = { k: args.k, t: args.t, batchSize: args.evalBatchSize };
        const r = await knnMonitor(backbone, { bank: train, query: test, k: args.k, t: args.t, batchSize: args.evalBatchSize, transform, onProgress });
        const { predictions: _omit, ...rest } = r;
        result = rest;
        break;
      }
      case 'linear': {
        options = { epochs: args.epochs ?? 100, lr: args.lr ?? 30, batchSize: args.batchSize ?? 256, seed: args.seed };
        result = { ...(await linearProbe(backbone, { train, test, epochs: args.epochs ?? undefined, lr: args.lr ?? undefined, batchSize: args.batchSize ?? undefined, seed: args.seed, extractBatchSize: args.evalBatchSize, transform, onProgress })) };
        break;
      }
      default: {
        const preset = FINETUNE_PRESETS[args.protocol];
        options = {
          epochs: args.epochs ?? 20, backboneLr: args.backboneLr ?? preset.backboneLr, classifierLr: args.classifierLr ?? preset.classifierLr,
          batchSize: args.batchSize ?? 256, seed: args.seed, subsetSeed: args.subsetSeed, augment: args.augment,
        };
        result = {
          ...(await fineTune(backbone, {
            train, test, protocol: args.protocol, epochs: args.epochs ?? undefined, backboneLr: args.backboneLr ?? undefined,
            classifierLr: args.classifierLr ?? undefined, batchSize: args.batchSize ?? undefined, seed: args.seed, subsetSeed: args.subsetSeed,
            augment: args.augment ? undefined : false, evalBatchSize: args.evalBatchSize, transform, onProgress,
          })),
        };
      }
    }
  } finally {
    backbone.dispose();
  }
  const out = args.out ?? path.join(path.dirname(args.checkpoint), `eval-${args.protocol}-${args.dataset}.json`);
  const record = {
    format: RESULT_FORMAT,
    protocol: args.protocol,
    dataset: args.dataset,
    checkpoint: path.resolve(args.checkpoint),
    checkpointMeta: { epoch: meta.epoch, step: meta.step, backbone: meta.backbone, framework: (meta.config as { framework?: unknown } | undefined)?.framework ?? null },
    backend: { name: backend.name, tfBackend: backend.tfBackend, threads: backend.threads, detail: backend.detail },
    trainSamples: train.size,
    testSamples: test.size,
    transform,
    options,
    top1: result.top1,
    top5: result.top5,
    result,
    seconds: (Date.now() - t0) / 1000,
    finishedAt: new Date().toISOString(),
  };
  writeJsonAtomic(out, record);
  return { out, result: record };
}

async function main(): Promise<number> {
  let args: EvalArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`evaluate: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const backend = await initBackend();
  if (!args.quiet) console.error(`backend: ${backend.name} (${backend.detail})`);
  const { out, result } = await evaluate(args, backend);
  console.log(`${args.protocol} on ${args.dataset}: top-1 ${(result.top1 as number).toFixed(2)}%, top-5 ${(result.top5 as number).toFixed(2)}% → ${out}`);
  return 0;
}

runCli('evaluate', module, main);
