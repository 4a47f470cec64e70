import { spawnSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';

/**
 * What the torch-engine tests share: Debian's PyTorch interpreter, the skip rule (torch missing
 * outside CI; under CI=true the tests must run), and the Python helper beside these tests.
 */
export const PYTHON = '/usr/bin/python3';
export const ROOT = path.resolve(__dirname, '..', '..', '..'); // dist/test/torch-engine → project root
export const HELPER = path.join(ROOT, 'test', 'torch-engine', 'engine_helper.py');

const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
export const skip: string | false = !hasTorch && !process.env.CI ? `needs ${PYTHON} with torch and torchvision (apt-get install python3-torch python3-torchvision)` : false;

/** Environment for Python children: one thread each (the cores are shared), no __pycache__ in the tree. */
export function pyEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1', ...extra };
}

/** Runs engine_helper.py `command` with a JSON spec; fails the test with Python's stderr. */
export function helper(command: string, spec: unknown): void {
  const r = spawnSync(PYTHON, [HELPER, command, JSON.stringify(spec)], { encoding: 'utf8', timeout: 10 * 60_000, env: pyEnv() });
  assert.equal(r.status, 0, `engine_helper.py ${command} failed:\n${r.stderr || r.error}`);
}
