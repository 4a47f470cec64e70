import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Where the project lives (scripts compile to dist/scripts/). */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
/** Debian's Python, which has nbconvert/nbclient/ipykernel (the python3 first on PATH may not). */
export const PYTHON = process.env.MIXMASK_PYTHON ?? '/usr/bin/python3';
export const KERNEL_NAME = 'mixmask-ts';
/** A project-local Jupyter data dir; headless runs point JUPYTER_PATH here. */
export const LOCAL_JUPYTER_DIR = path.join(PROJECT_ROOT, '.jupyter');

const APT_HINT = 'apt-get install -y jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-client';

/** Fails with the exact install command when Debian's Jupyter pieces are missing. */
export function checkJupyter(): void {
  const res = spawnSync(PYTHON, ['-c', 'import nbconvert, nbclient, jupyter_client'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    const why = res.error ? res.error.message : (res.stderr.trim().split('\n').pop() ?? '');
    throw new Error(`Jupyter is not usable through ${PYTHON} (${why}). Install it with: ${APT_HINT}`);
  }
}

/** kernel.json that starts this project's own tslab with this Node, whatever PATH says. */
export function kernelSpec(): Record<string, unknown> {
  const tslab = path.join(PROJECT_ROOT, 'node_modules', 'tslab', 'bin', 'tslab');
  if (!fs.existsSync(tslab)) throw new Error(`tslab is not installed at ${tslab}: run npm ci first`);
  return {
    argv: [process.execPath, tslab, 'kernel', '--config-path', '{connection_file}'],
    display_name: 'TypeScript (MixMask, tslab)',
    language: 'typescript',
  };
}

/** Writes the kernel spec into <jupyterDir>/kernels/mixmask-ts/ and returns that folder. */
export function writeKernelSpec(jupyterDir: string = LOCAL_JUPYTER_DIR): string {
  const dir = path.join(jupyterDir, 'kernels', KERNEL_NAME);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'kernel.json'), JSON.stringify(kernelSpec(), null, 2) + '\n');
  return dir;
}
