/**
 * `npm run train -- --framework moco-v2 --method mixmask --dataset cifar100 --profile paper`
 * Pretrains one framework with one view method, writing config.json, log.jsonl (per step and
 * epoch, with the kNN monitor) and checkpoint.safetensors into the run directory, which the
 * notebooks and `npm run eval` read. Ctrl-C stops after the current step with a checkpoint;
 * `--resume` continues exactly where it stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatBackendReport, initBackend } from '../lib/backend';
import { FRAMEWORKS, FrameworkName } from '../lib/frameworks';
import type { ViewMethod } from '../lib/masks/views';
import { DATASET_NAMES, DatasetName, PROFILES, Profile, PresetOverrides, RunConfig, pretrainConfig } from '../lib/presets';
import { defaultRunDir, startRun } from '../lib/train/run';

const METHODS: readonly ViewMethod[] = ['none', 'mixmask', 'unmix', 'both', 'erase'];

export const USAGE = `usage: npm run train -- --framework <${FRAMEWORKS.join('|')}> --method <${METHODS.join('|')}> --dataset <${DATASET_NAMES.join('|')}> --profile <${PROFILES.join('|')}> [options]
  --run-dir <dir>        where logs and the checkpoint go (default runs/<dataset>-<profile>/<framework>-<method>…-s<seed>)
  --resume               continue the run in --run-dir from its checkpoint (its config.json is reused)
  --mask <block|discrete> --grid <g> --ratio <r>   MixMask grid (default block, 8, 0.5)
  --epochs <n> --batch-size <n> --width <n> --train-subset <n|all> --seed <n> --knn-every <n>
  --max-steps <n>        stop (with a checkpoint) after n steps of this call
  --help`;

export interface TrainArgs {
  config: RunConfig;
  runDir: string;
  resume: boolean;
  maxSteps?: number;
}

export function parseTrainArgs(argv: readonly string[]): TrainArgs | 'help' {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--resume') {
      flags.add(a);
      continue;
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
    values.set(a, v);
    i++;
  }
  const known = ['--framework', '--method', '--dataset', '--profile', '--run-dir', '--mask', '--grid', '--ratio', '--epochs', '--batch-size', '--width', '--train-subset', '--seed', '--knn-every', '--max-steps'];
  for (const k of values.keys()) if (!known.includes(k)) throw new Error(`unknown option ${k}`);
  const int = (k: string, min: number): number | undefined => {
    const v = values.get(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${k} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  };
  const oneOf = <T extends string>(k: string, options: readonly T[], fallback?: T): T => {
    const v = values.get(k) ?? fallback;
    if (v === undefined) throw new Error(`${k} is required (one of ${options.join(', ')})`);
    if (!options.includes(v as T)) throw new Error(`${k} must be one of ${options.join(', ')}, got '${v}'`);
    return v as T;
  };
  const resume = flags.has('--resume');
  const maxSteps = int('--max-steps', 1);

  if (resume && values.has('--run-dir')) {
    const runDir = values.get('--run-dir')!;
    const file = path.join(runDir, 'config.json');
    if (!fs.existsSync(file)) throw new Error(`--resume: ${file} does not exist`);
    const config = JSON.parse(fs.readFileSync(file, 'utf8')) as RunConfig;
    const epochs = int('--epochs', 1);
    return { config: epochs ? { ...config, epochs } : config, runDir, resume, maxSteps };
  }

  if (values.get('--framework') === 'moco') values.set('--framework', 'moco-v2'); // the paper's "MoCo" is v2
  const framework = oneOf<FrameworkName>('--framework', FRAMEWORKS);
  const ratioText = values.get('--ratio');
  const ratio = ratioText === undefined ? undefined : Number(ratioText);
  if (ratio !== undefined && !(ratio >= 0 && ratio <= 1)) throw new Error(`--ratio must be a number in [0, 1], got '${ratioText}'`);
  const subsetText = values.get('--train-subset');
  const overrides: PresetOverrides = {
    method: oneOf<ViewMethod>('--method', METHODS, 'mixmask'),
    maskType: oneOf<'block' | 'discrete'>('--mask', ['block', 'discrete'], 'block'),
    gridSize: int('--grid', 1),
    ratio,
    epochs: int('--epochs', 1),
    batchSize: int('--batch-size', 2),
    width: int('--width', 1),
    trainSubset: subsetText === 'all' ? null : int('--train-subset', 1),
    seed: int('--seed', 0),
    knnEvery: int('--knn-every', 0),
  };
  const config = pretrainConfig(framework, oneOf<DatasetName>('--dataset', DATASET_NAMES), oneOf<Profile>('--profile', PROFILES), overrides);
  return { config, runDir: values.get('--run-dir') ?? defaultRunDir(config), resume, maxSteps };
}

async function main(): Promise<number> {
  let args: TrainArgs | 'help';
  try {
    args = parseTrainArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`train: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args === 'help') {
    console.log(USAGE);
    return 0;
  }
  const report = await initBackend();
  console.error(formatBackendReport(report));
  const c = args.config;
  console.error(`${c.framework} + ${c.view.method} on ${c.dataset} (${c.profile}): ${c.epochs} epochs, batch ${c.batchSize}, width ${c.backbone.width} → ${args.runDir}`);
  const abort = new AbortController();
  process.once('SIGINT', () => {
    console.error('\ninterrupt: stopping after this step and saving a checkpoint (Ctrl-C again to kill)');
    abort.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  const summary = await startRun({ config: c, runDir: args.runDir, resume: args.resume, signal: abort.signal, maxSteps: args.maxSteps });
  console.log(JSON.stringify({ ...summary, runDir: args.runDir, backend: report.name }));
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(`train: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
