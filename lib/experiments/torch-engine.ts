import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { repoRoot } from '../data/paths';
import type { RunConfig } from '../train/config';
import { InterruptedError } from '../train/interrupt';

/**
 * The same run config on PyTorch DistributedDataParallel: the engine under torch/ at the project
 * root (docs/torch-engine.md), started through torchrun. Its log.jsonl and checkpoint.safetensors
 * are ours, so the evaluators, the export and the notebooks read a PyTorch-trained run as they
 * read a tfjs one.
 */
export interface TorchLaunch {
  /** Processes per machine (torchrun --nproc_per_node). */
  nprocPerNode: number;
  /** Machines (default 1). */
  nnodes: number;
  /** host:port of the rendezvous of a multi-machine job. */
  rdzvEndpoint?: string;
}

export interface TorchRunOptions {
  config: RunConfig;
  runDir: string;
  launch: TorchLaunch;
  resume?: boolean;
  maxSteps?: number;
}

/** The PyTorch engine's package folder (torch/ at the project root). */
export function torchEngineDir(): string {
  return path.join(repoRoot(), 'torch');
}

/**
 * The torchrun command that trains `runDir/config.json` with the PyTorch engine: program,
 * arguments and the environment it needs (PYTHONPATH to the engine). `torchrun` comes from
 * $MIXMASK_TORCHRUN or PATH. One machine runs a standalone rendezvous; several meet at
 * rdzvEndpoint. `--redirects 1 --tee 1` keeps the output on the console (the value 0 trips
 * torchrun 1.13 under Python ≥ 3.11) and each rank's stdout in the run's torchrun-logs/.
 */
export function torchCommand(o: TorchRunOptions, env: NodeJS.ProcessEnv = process.env): { program: string; args: string[]; env: Record<string, string> } {
  const t = o.launch;
  if (t.nnodes > 1 && !t.rdzvEndpoint) throw new Error(`nnodes ${t.nnodes} needs rdzvEndpoint <host:port> (the rendezvous every machine reaches)`);
  const rdzv = t.nnodes > 1 || t.rdzvEndpoint
    ? ['--rdzv_backend', 'c10d', '--rdzv_endpoint', t.rdzvEndpoint!, '--rdzv_id', path.basename(path.resolve(o.runDir))]
    : ['--standalone'];
  const args = [
    '--nnodes', String(t.nnodes), '--nproc_per_node', String(t.nprocPerNode), ...rdzv,
    '--redirects', '1', '--tee', '1', '--log_dir', path.join(path.resolve(o.runDir), 'torchrun-logs'),
    '-m', 'mixmask_torch_engine', '--run-dir', path.resolve(o.runDir),
    ...(o.resume ? ['--resume', '--epochs', String(o.config.epochs)] : []),
    ...(o.maxSteps !== undefined ? ['--max-steps', String(o.maxSteps)] : []),
  ];
  return { program: env.MIXMASK_TORCHRUN || 'torchrun', args, env: { PYTHONPATH: torchEngineDir() } };
}

/** A TCP port free on this machine right now (for a local rendezvous). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A command as one shell line (single-quoted where needed). */
export function shellLine(env: Record<string, string>, program: string, args: readonly string[]): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [...Object.entries(env).map(([k, v]) => `${k}=${q(v)}`), q(program), ...args.map(q)].join(' ');
}

/** Writes config.json of a new run (refusing a folder that already holds one); a resumed run keeps its own. */
export function prepareTorchRun(o: TorchRunOptions): void {
  if (o.resume) return;
  if (fs.existsSync(path.join(o.runDir, 'checkpoint.safetensors'))) {
    throw new Error(`${o.runDir} already holds a run (checkpoint.safetensors); resume it or choose another directory`);
  }
  fs.mkdirSync(o.runDir, { recursive: true });
  fs.writeFileSync(path.join(o.runDir, 'config.json'), JSON.stringify(o.config, null, 2) + '\n');
}

/**
 * Trains with the PyTorch engine and resolves when torchrun ends; the command line (after `$ `)
 * and torchrun's output lines go to `onLine` (default: stderr). A failing rank fails the job with an error naming the intact checkpoint.
 * `signal` (e.g. Kernel → Interrupt through `interruptible`) stops torchrun with SIGINT; its
 * workers stop, and the last checkpoint stays intact.
 */
export async function runTorchEngine(o: TorchRunOptions & { signal?: AbortSignal; onLine?: (line: string) => void }): Promise<void> {
  prepareTorchRun(o);
  // One machine: a rendezvous on a free local port rather than --standalone's fixed 29400, which
  // a second job on the same machine (another run, a test) would collide with.
  const launch = o.launch.nnodes === 1 && !o.launch.rdzvEndpoint ? { ...o.launch, rdzvEndpoint: `127.0.0.1:${await freePort()}` } : o.launch;
  const cmd = torchCommand({ ...o, launch });
  const onLine = o.onLine ?? ((l: string) => process.stderr.write(l + '\n'));
  onLine(`$ ${shellLine(cmd.env, cmd.program, cmd.args)}`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.program, cmd.args, { env: { ...process.env, ...cmd.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let rest = '';
    const forward = (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) onLine(l);
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', forward);
    const stop = () => child.kill('SIGINT');
    o.signal?.addEventListener('abort', stop, { once: true });
    child.on('error', (e) => reject(new Error(`could not start ${cmd.program} (${e.message}); install PyTorch (apt-get install python3-torch python3-torchvision) or set MIXMASK_TORCHRUN`)));
    child.on('close', (code, sig) => {
      o.signal?.removeEventListener('abort', stop);
      if (rest.trim()) onLine(rest);
      const ckpt = path.join(o.runDir, 'checkpoint.safetensors');
      const last = fs.existsSync(ckpt) ? `; the last checkpoint, ${ckpt}, is intact: resume with the same run folder` : '';
      if (o.signal?.aborted) reject(new InterruptedError(`the PyTorch engine was stopped${last}`));
      else if (code === 0) resolve();
      else reject(new Error(`the PyTorch engine failed (torchrun exit code ${code ?? sig}; the failing rank's error is above)${last}`));
    });
  });
}

/** Why the PyTorch engine cannot run here (torchrun missing, or a dataset it does not read), or null when it can. */
export function torchEngineUnavailable(config: RunConfig, env: NodeJS.ProcessEnv = process.env): string | null {
  if (config.dataset === 'synthetic') return "the PyTorch engine reads real datasets only (Fashion-MNIST, CIFAR, image folders), not 'synthetic'";
  const program = env.MIXMASK_TORCHRUN || 'torchrun';
  const r = spawnSync(program, ['--help'], { stdio: 'ignore', timeout: 60_000, cwd: repoRoot() });
  if (r.error || r.status !== 0) return `${program} does not run here (install PyTorch: apt-get install python3-torch python3-torchvision, or set MIXMASK_TORCHRUN)`;
  return null;
}
