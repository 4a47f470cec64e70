import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dataRoot } from './paths';

/**
 * Downloading and preparing datasets, safe to re-run: the archive is streamed to a `.part` file,
 * its MD5 checked against the official value, then renamed; extraction goes to a temporary
 * folder renamed into place, and a marker file written last says the folder is complete. Without
 * internet it throws with exactly what to download and where to put it.
 */
export type DatasetId = 'cifar10' | 'cifar100' | 'tiny-imagenet';

export interface RemoteDataset {
  id: string;
  title: string;
  url: string;
  md5: string;
  /** Archive file name, kept in <root>/downloads/. */
  archive: string;
  /** Folder the archive extracts to, under <root>. */
  folder: string;
  /** Files (relative to folder) that must exist after extraction. */
  expect: string[];
  format: 'tar.gz' | 'zip';
  approxMB: number;
}

export const DATASETS: Record<DatasetId, RemoteDataset> = {
  cifar10: {
    id: 'cifar10',
    title: 'CIFAR-10 (binary version)',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    md5: 'c32a1d4ab5d03f1284b67883e8d87530',
    archive: 'cifar-10-binary.tar.gz',
    folder: 'cifar-10-batches-bin',
    expect: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin', 'batches.meta.txt'],
    format: 'tar.gz',
    approxMB: 162,
  },
  cifar100: {
    id: 'cifar100',
    title: 'CIFAR-100 (binary version)',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    md5: '03b5dce01913d631647c71ecec9e9cb8',
    archive: 'cifar-100-binary.tar.gz',
    folder: 'cifar-100-binary',
    expect: ['train.bin', 'test.bin', 'fine_label_names.txt', 'coarse_label_names.txt'],
    format: 'tar.gz',
    approxMB: 161,
  },
  'tiny-imagenet': {
    id: 'tiny-imagenet',
    title: 'Tiny-ImageNet-200',
    url: 'http://cs231n.stanford.edu/tiny-imagenet-200.zip',
    md5: '90528d7ca1a48142e341f4ef8d21d0de',
    archive: 'tiny-imagenet-200.zip',
    folder: 'tiny-imagenet-200',
    expect: ['wnids.txt', 'words.txt', 'train', 'val/val_annotations.txt', 'val/images'],
    format: 'zip',
    approxMB: 237,
  },
};

export const READY_MARKER = '.mixmask-ready';

export interface PrepareOptions {
  root?: string;
  log?: (line: string) => void;
  /** Injected for tests; default global fetch. */
  fetchImpl?: typeof fetch;
}

export interface DatasetState {
  ready: boolean;
  folder: string;
  archive: string;
  archivePresent: boolean;
}

export function datasetStatus(spec: RemoteDataset, root = dataRoot()): DatasetState {
  const folder = path.join(root, spec.folder);
  const archive = path.join(root, 'downloads', spec.archive);
  const ready = fs.existsSync(path.join(folder, READY_MARKER)) && spec.expect.every((f) => fs.existsSync(path.join(folder, f)));
  return { ready, folder, archive, archivePresent: fs.existsSync(archive) };
}

export function md5File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('md5');
    fs.createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Instructions for placing the data by hand (no internet here, or a blocked host). */
export function manualInstructions(spec: RemoteDataset, root = dataRoot()): string {
  const st = datasetStatus(spec, root);
  return [
    `${spec.title}: download ${spec.url}`,
    `  (~${spec.approxMB} MB, md5 ${spec.md5}) and put it at`,
    `    ${st.archive}`,
    `  then run \`npm run data -- ${spec.id}\` again to verify and extract it; or extract it yourself so that`,
    `    ${path.join(st.folder, spec.expect[0])} exists (then the same command only verifies and marks it).`,
    `  Datasets live in ${root} (set MIXMASK_DATA to use another folder).`,
  ].join('\n');
}

/** Makes `spec` ready under root: verified archive → extracted folder → marker. Returns the folder. */
export async function prepareDataset(spec: RemoteDataset, opts: PrepareOptions = {}): Promise<string> {
  const root = opts.root ?? dataRoot();
  const log = opts.log ?? ((l: string) => console.log(l));
  const st = datasetStatus(spec, root);
  if (st.ready) {
    log(`${spec.title}: ready in ${st.folder}`);
    return st.folder;
  }
  // Extracted by hand (no marker yet): accept it if every expected file is there.
  if (spec.expect.every((f) => fs.existsSync(path.join(st.folder, f)))) {
    writeMarker(st.folder, spec, 'found extracted');
    log(`${spec.title}: found an extracted copy in ${st.folder}; marked ready`);
    return st.folder;
  }
  fs.mkdirSync(path.dirname(st.archive), { recursive: true });
  if (st.archivePresent) {
    const sum = await md5File(st.archive);
    if (sum !== spec.md5) {
      throw new Error(`${spec.title}: ${st.archive} has md5 ${sum}, expected ${spec.md5}; it is damaged or another file — delete it and run again`);
    }
    log(`${spec.title}: archive ${st.archive} verified (md5 ${sum})`);
  } else {
    await download(spec, st.archive, opts.fetchImpl ?? fetch, log, root);
  }
  extract(spec, st.archive, root, st.folder, log);
  writeMarker(st.folder, spec, 'extracted');
  log(`${spec.title}: ready in ${st.folder}`);
  return st.folder;
}

async function download(spec: RemoteDataset, dest: string, fetchImpl: typeof fetch, log: (l: string) => void, root: string): Promise<void> {
  const part = `${dest}.part-${process.pid}`;
  log(`${spec.title}: downloading ${spec.url} (~${spec.approxMB} MB)`);
  let res: Response;
  try {
    res = await fetchImpl(spec.url);
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
    throw new Error(`${spec.title}: cannot reach ${spec.url} (${cause}); no internet access here?\n${manualInstructions(spec, root)}`);
  }
  if (!res.ok || !res.body) throw new Error(`${spec.title}: ${spec.url} answered HTTP ${res.status}\n${manualInstructions(spec, root)}`);
  const hash = crypto.createHash('md5');
  const fd = fs.openSync(part, 'w');
  let bytes = 0;
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      let off = 0;
      while (off < value.length) off += fs.writeSync(fd, value, off, value.length - off);
      bytes += value.length;
    }
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(part, { force: true });
    throw new Error(`${spec.title}: download of ${spec.url} broke off after ${bytes} bytes (${(e as Error).message}); run again to retry`);
  }
  fs.closeSync(fd);
  const sum = hash.digest('hex');
  if (sum !== spec.md5) {
    fs.rmSync(part, { force: true });
    throw new Error(`${spec.title}: downloaded ${bytes} bytes from ${spec.url} with md5 ${sum}, expected ${spec.md5}; file discarded, run again to retry`);
  }
  fs.renameSync(part, dest);
  log(`${spec.title}: downloaded ${bytes} bytes, md5 verified`);
}

function extract(spec: RemoteDataset, archive: string, root: string, folder: string, log: (l: string) => void): void {
  const tmp = path.join(root, `.extract-${spec.id}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    log(`${spec.title}: extracting ${archive}`);
    const run = (cmd: string, args: string[]): boolean => {
      const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      if (r.status !== 0) throw new Error(`${spec.title}: ${cmd} failed on ${archive}: ${r.stderr?.toString().trim()}`);
      return true;
    };
    const ok =
      spec.format === 'tar.gz'
        ? run('tar', ['-xzf', archive, '-C', tmp])
        : run('unzip', ['-q', archive, '-d', tmp]) || run('python3', ['-m', 'zipfile', '-e', archive, tmp]);
    if (!ok) throw new Error(`${spec.title}: no extractor found (need ${spec.format === 'tar.gz' ? 'tar' : 'unzip or python3'})`);
    const inner = path.join(tmp, spec.folder);
    const missing = spec.expect.filter((f) => !fs.existsSync(path.join(inner, f)));
    if (missing.length > 0) throw new Error(`${spec.title}: ${archive} did not contain ${missing.map((f) => path.join(spec.folder, f)).join(', ')}`);
    fs.rmSync(folder, { recursive: true, force: true });
    fs.renameSync(inner, folder);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function writeMarker(folder: string, spec: RemoteDataset, how: string): void {
  fs.writeFileSync(path.join(folder, READY_MARKER), JSON.stringify({ dataset: spec.id, md5: spec.md5, how, at: new Date().toISOString() }) + '\n');
}
