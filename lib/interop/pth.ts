import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * PyTorch's .pth / .pth.tar files are zip archives of pickles: reading them means running
 * Python's unpickler. Rather than re-implement it, we hand them to the user's own PyTorch
 * through scripts/pth-to-safetensors.py, and when no Python with torch is found we say the
 * exact command to run.
 */

export const PTH_SCRIPT_NAME = 'pth-to-safetensors.py';

/** Finds scripts/pth-to-safetensors.py from lib/interop (ts-node) or dist/lib/interop (compiled). */
export function pthScriptPath(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'scripts', PTH_SCRIPT_NAME);
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find scripts/${PTH_SCRIPT_NAME} above ${__dirname}`);
}

/** True for files PyTorch writes with torch.save (anything that is not safetensors). */
export function isPickleCheckpoint(file: string): boolean {
  return !/\.safetensors$/i.test(file);
}

/**
 * The Python interpreters worth trying, best first: MIXMASK_PYTHON, then the `python3` on PATH
 * (the user's environment, where their torch usually is), then Debian's /usr/bin/python3.
 */
export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = [env.MIXMASK_PYTHON, 'python3', '/usr/bin/python3', 'python'].filter((p): p is string => !!p);
  return [...new Set(list)];
}

const torchProbe = new Map<string, boolean>();

/** The first interpreter that can `import torch`, or null. */
export function findTorchPython(candidates: string[] = pythonCandidates()): string | null {
  for (const py of candidates) {
    if (!torchProbe.has(py)) {
      // From a neutral folder: a folder named torch/ in the working directory would be imported instead.
      const r = spawnSync(py, ['-c', 'import torch; torch.zeros(1)'], { stdio: 'ignore', timeout: 120_000, cwd: os.tmpdir() });
      torchProbe.set(py, r.status === 0);
    }
    if (torchProbe.get(py)) return py;
  }
  return null;
}

export interface PthConvertOptions {
  /** Interpreter to use (default: the first of pythonCandidates() that imports torch). */
  python?: string;
  /** Interpreters to try when `python` is not given. */
  candidates?: string[];
  /** Allow full unpickling (arbitrary code) for checkpoints that store Python objects. Only for files you trust. */
  trustPickle?: boolean;
  /** Take the state dict from this entry of the saved dict (default: state_dict, model, … or the dict itself). */
  select?: string;
}

/** The command a user runs by hand; quoted for a POSIX shell. */
export function pthConvertCommand(inFile: string, outFile: string, opts: PthConvertOptions = {}): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  let script: string;
  try {
    script = pthScriptPath();
  } catch {
    script = path.join('scripts', PTH_SCRIPT_NAME);
  }
  const extra = [...(opts.select ? ['--select', opts.select] : []), ...(opts.trustPickle ? ['--trust-pickle'] : [])];
  return ['python3', script, inFile, outFile, ...extra].map(q).join(' ');
}

/** Where a converted copy of a PyTorch checkpoint naturally goes: the same name, .safetensors. */
export function safetensorsNameFor(file: string): string {
  return file.replace(/\.(pth\.tar|pth|pt|tar|ckpt|bin)$/i, '') + '.safetensors';
}

function noTorchError(inFile: string, outFile: string, opts: PthConvertOptions): Error {
  return new Error(
    `${inFile} is a PyTorch pickle checkpoint; reading it needs Python with PyTorch, and none was found ` +
      `(tried ${(opts.candidates ?? pythonCandidates()).join(', ')}; set MIXMASK_PYTHON to choose one). ` +
      `Convert it where PyTorch is installed, then import the .safetensors file:\n  ${pthConvertCommand(inFile, outFile, opts)}`,
  );
}

/**
 * Converts a PyTorch checkpoint to .safetensors (all of its tensors, keys unchanged, floats as
 * float32, integers as int64) with the user's PyTorch. Throws with the exact command when no
 * Python with torch is available.
 */
export function convertPthToSafetensors(inFile: string, outFile: string, opts: PthConvertOptions = {}): void {
  if (!fs.existsSync(inFile)) throw new Error(`${inFile}: no such file`);
  const python = opts.python ?? findTorchPython(opts.candidates);
  if (!python) throw noTorchError(inFile, outFile, opts);
  const args = [pthScriptPath(), inFile, outFile];
  if (opts.select) args.push('--select', opts.select);
  if (opts.trustPickle) args.push('--trust-pickle');
  const r = spawnSync(python, args, { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 16 << 20 });
  if (r.error) throw new Error(`${inFile}: running ${python} failed: ${r.error.message}`);
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout || '').trim().split('\n').slice(-6).join('\n');
    throw new Error(`${inFile}: conversion with ${python} failed (exit ${r.status}):\n${msg}`);
  }
}

/** Runs fn on a safetensors version of `file`: the file itself, or a temporary conversion of a .pth. */
export function withSafetensors<T>(file: string, opts: PthConvertOptions, fn: (safetensorsFile: string) => T): T {
  if (!isPickleCheckpoint(file)) return fn(file);
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  // Resolve Python first, so that the advice names a sensible output file, not a temp path.
  const python = opts.python ?? findTorchPython(opts.candidates);
  if (!python) throw noTorchError(file, safetensorsNameFor(file), opts);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-pth-'));
  try {
    const out = path.join(dir, path.basename(safetensorsNameFor(file)));
    convertPthToSafetensors(file, out, { ...opts, python });
    return fn(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
