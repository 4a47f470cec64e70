/**
 * `npm run train -- --framework moco-v2 --method mixmask --dataset cifar100 --profile paper`
 * Pretrains one framework with one view method, writing config.json, log.jsonl (per step and
 * epoch, with the kNN monitor) and checkpoint.safetensors into the run directory, which the
 * notebooks and `npm run eval` read. Ctrl-C stops after the current step with a checkpoint;
 * `--resume` continues exactly where it stopped. `--engine torch` trains the same config.json on
 * PyTorch DistributedDataParallel through torchrun instead (docs/torch-engine.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatBackendReport, initBackend } from '../lib/backend';
import { FRAMEWORKS } from '../lib/frameworks';
import type { ViewMethod } from '../lib/masks/views';
import { DATASET_NAMES, PROFILES, PresetOverrides, RunConfig, pretrainConfig } from '../lib/presets';
import { defaultRunDir, startRun } from '../lib/experiments';
import { prepareTorchRun, runTorchEngine, shellLine, torchCommand, type TorchLaunch } from '../lib/experiments/torch-engine';
import { readRunConfig } from '../lib/train/config';
import { runTitle } from '../lib/train/trainer';
import { Args, runCli, stopSignal } from './cli';

const METHODS: readonly ViewMethod[] = ['none', 'mixmask', 'unmix', 'both', 'erase'];

export const USAGE = `usage: npm run train -- --framework <${FRAMEWORKS.join('|')}> --method <${METHODS.join('|')}> --dataset <${DATASET_NAMES.join('|')}> --profile <${PROFILES.join('|')}> [options]
  --run-dir <dir>        where logs and the checkpoint go (default runs/<dataset>-<profile>/<framework>-<method>…-s<seed>)
  --resume               continue the run in --run-dir from its checkpoint (its config.json is reused)
  --mask <block|discrete> --grid <g> --ratio <r>   MixMask grid (default block, 8, 0.5)
  --no-asymmetric        score the mixed view with one plain term L(x_m → x2) instead of the two λ-weighted ones (ablation)
  --no-validation        hold out no validation split and monitor on the test split (the paper profile's protocol; runs made before the split)
  --epochs <n> --batch-size <n> --width <n> --train-subset <n|all> --seed <n> --knn-every <n>
  --min-crop-scale <s>   raise every view's crop-scale lower bound to s (default: 0.5 on fashion-mnist, else the recipe's own)
  --max-steps <n>        stop (with a checkpoint) after n steps of this call
  --engine <tfjs|torch>  torch: write config.json and train it with PyTorch DDP through torchrun (docs/torch-engine.md)
  --nproc-per-node <n>   torch: processes per machine (default 1)   --nnodes <n>  machines (default 1)
  --rdzv-endpoint <host:port>   torch: the rendezvous of a multi-machine job (required with --nnodes > 1)
  --print-command        torch: write config.json and print the torchrun line (for a cluster scheduler) instead of running it
  --help`;

/** How torchrun starts the PyTorch engine, and whether to print the line instead. */
export interface CliTorchLaunch extends TorchLaunch {
  printCommand: boolean;
}

export interface TrainArgs {
  config: RunConfig;
  runDir: string;
  resume: boolean;
  maxSteps?: number;
  /** Set with `--engine torch`: how torchrun starts the PyTorch engine. */
  torch?: CliTorchLaunch;
}

export function parseTrainArgs(argv: readonly string[]): TrainArgs | 'help' {
  const args = new Args(argv, {
    options: ['--framework', '--method', '--dataset', '--profile', '--run-dir', '--mask', '--grid', '--ratio', '--epochs', '--batch-size', '--width', '--train-subset', '--seed', '--knn-every', '--min-crop-scale', '--max-steps',
      '--engine', '--nproc-per-node', '--nnodes', '--rdzv-endpoint'],
    flags: ['--resume', '--no-asymmetric', '--no-validation', '--print-command'],
  });
  if (args.help) return 'help';
  const resume = args.flag('--resume');
  const maxSteps = args.int('--max-steps', 1);
  const runDir = args.string('--run-dir');
  const torch = parseTorchLaunch(args);

  if (resume && runDir !== undefined) {
    const file = path.join(runDir, 'config.json');
    if (!fs.existsSync(file)) throw new Error(`--resume: ${file} does not exist`);
    const config = readRunConfig(file);
    const epochs = args.int('--epochs', 1);
    return { config: epochs ? { ...config, epochs } : config, runDir, resume, maxSteps, ...(torch ? { torch } : {}) };
  }

  const framework = args.string('--framework') === 'moco' ? 'moco-v2' : args.oneOf('--framework', FRAMEWORKS); // the paper's "MoCo" is v2
  const subset = args.string('--train-subset');
  const overrides: PresetOverrides = {
    method: args.oneOf('--method', METHODS) ?? 'mixmask',
    maskType: args.oneOf('--mask', ['block', 'discrete'] as const) ?? 'block',
    gridSize: args.int('--grid', 1),
    ratio: args.number('--ratio', { min: 0, max: 1 }),
    epochs: args.int('--epochs', 1),
    batchSize: args.int('--batch-size', 2),
    width: args.int('--width', 1),
    trainSubset: subset === 'all' ? null : args.int('--train-subset', 1),
    seed: args.int('--seed', 0),
    knnEvery: args.int('--knn-every', 0),
    minCropScale: args.number('--min-crop-scale', { min: 0, max: 1 }),
    ...(args.flag('--no-asymmetric') ? { asymmetric: false } : {}),
    ...(args.flag('--no-validation') ? { validation: null } : {}),
  };
  const required = <T>(name: string, v: T | undefined, options: readonly string[]): T => {
    if (v === undefined) throw new Error(`${name} is required (one of ${options.join(', ')})`);
    return v;
  };
  const config = pretrainConfig(
    required('--framework', framework, FRAMEWORKS),
    required('--dataset', args.oneOf('--dataset', DATASET_NAMES), DATASET_NAMES),
    required('--profile', args.oneOf('--profile', PROFILES), PROFILES),
    overrides,
  );
  return { config, runDir: runDir ?? defaultRunDir(config), resume, maxSteps, ...(torch ? { torch } : {}) };
}

function parseTorchLaunch(args: Args): CliTorchLaunch | undefined {
  const engine = args.oneOf('--engine', ['tfjs', 'torch'] as const) ?? 'tfjs';
  if (engine === 'tfjs') {
    for (const name of ['--nproc-per-node', '--nnodes', '--rdzv-endpoint']) {
      if (args.has(name)) throw new Error(`${name} needs --engine torch`);
    }
    if (args.flag('--print-command')) throw new Error('--print-command needs --engine torch');
    return undefined;
  }
  const nnodes = args.int('--nnodes', 1) ?? 1;
  const rdzvEndpoint = args.string('--rdzv-endpoint');
  if (nnodes > 1 && rdzvEndpoint === undefined) throw new Error(`--nnodes ${nnodes} needs --rdzv-endpoint <host:port> (the rendezvous every machine reaches)`);
  if (rdzvEndpoint !== undefined && !/^[^\s:]+:\d+$/.test(rdzvEndpoint)) throw new Error(`--rdzv-endpoint must be host:port, got ${JSON.stringify(rdzvEndpoint)}`);
  return { nprocPerNode: args.int('--nproc-per-node', 1) ?? 1, nnodes, rdzvEndpoint, printCommand: args.flag('--print-command') };
}

/** `--engine torch`: writes config.json (a new run), then runs (runTorchEngine) or prints the torchrun line. */
async function runTorch(a: TrainArgs & { torch: CliTorchLaunch }): Promise<number> {
  const o = { config: a.config, runDir: a.runDir, resume: a.resume, maxSteps: a.maxSteps, launch: a.torch };
  if (a.torch.printCommand) {
    prepareTorchRun(o);
    const cmd = torchCommand(o);
    console.log(shellLine(cmd.env, cmd.program, cmd.args));
    return 0;
  }
  console.error(`${runTitle(a.config)} on ${a.config.dataset} (${a.config.profile}) with the PyTorch engine, ${a.torch.nnodes * a.torch.nprocPerNode} process(es) → ${a.runDir}`);
  try {
    await runTorchEngine(o);
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    return 1;
  }
  return 0;
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
  if (args.torch) {
    try {
      return await runTorch({ ...args, torch: args.torch });
    } catch (e) {
      console.error(`train: ${(e as Error).message}`);
      return 2;
    }
  }
  const report = await initBackend();
  console.error(formatBackendReport(report));
  const c = args.config;
  console.error(`${runTitle(c)} on ${c.dataset} (${c.profile}): ${c.epochs} epochs, batch ${c.batchSize}, width ${c.backbone.width} → ${args.runDir}`);
  const signal = stopSignal('stopping after this step and saving a checkpoint');
  const summary = await startRun({ config: c, runDir: args.runDir, resume: args.resume, signal, maxSteps: args.maxSteps });
  console.log(JSON.stringify({ ...summary, runDir: args.runDir, backend: report.name }));
  return 0;
}

runCli('train', module, main);
