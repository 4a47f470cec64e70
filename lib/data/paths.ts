import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Where datasets live: $MIXMASK_DATA, else <repo>/data/datasets (git-ignored). The repository
 * root is found by walking up from this file to the package.json named "mixmask-ts", so the
 * same answer comes from lib/ (ts-node, tslab) and dist/lib/ (compiled).
 */
export function dataRoot(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.MIXMASK_DATA;
  if (fromEnv && fromEnv.trim() !== '') return path.resolve(fromEnv);
  return path.join(repoRoot(), 'data', 'datasets');
}

/** Decoded-pixel caches (e.g. Tiny-ImageNet as one uint8 file): $MIXMASK_CACHE, else <repo>/data/cache. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.MIXMASK_CACHE;
  if (fromEnv && fromEnv.trim() !== '') return path.resolve(fromEnv);
  return path.join(repoRoot(), 'data', 'cache');
}

let cachedRepoRoot: string | null = null;

export function repoRoot(): string {
  if (cachedRepoRoot) return cachedRepoRoot;
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'mixmask-ts') {
          cachedRepoRoot = dir;
          return dir;
        }
      } catch {
        // an unreadable package.json higher up is not ours; keep walking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`repoRoot: no package.json named "mixmask-ts" above ${__dirname}; set MIXMASK_DATA`);
    dir = parent;
  }
}

/** Debian's dataset-fashion-mnist package path (the offline real-data default). */
export const FASHION_MNIST_DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';
