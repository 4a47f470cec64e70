/**
 * `npm run data -- <cifar100|cifar10|tiny-imagenet|all|status>`: downloads, verifies (official
 * MD5) and extracts datasets into $MIXMASK_DATA or data/datasets/, safe to re-run. Without
 * internet it prints what to download and where to put it, and exits with status 2.
 * Tiny-ImageNet is also decoded once into data/cache/ (one uint8 file per split).
 */
import * as fs from 'node:fs';
import { DATASETS, type DatasetId, datasetStatus, prepareDataset } from '../lib/data/download';
import { FASHION_MNIST_DEBIAN_DIR, cacheRoot, dataRoot } from '../lib/data/paths';
import { loadTinyImageNet } from '../lib/data/tiny-imagenet';

const USAGE = 'usage: npm run data -- <cifar100|cifar10|tiny-imagenet|all|status> [more…]';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
    console.log(USAGE);
    return args.length === 0 ? 1 : 0;
  }
  const ids = new Set<DatasetId>();
  let statusOnly = false;
  for (const a of args) {
    if (a === 'all') (['cifar100', 'cifar10', 'tiny-imagenet'] as DatasetId[]).forEach((d) => ids.add(d));
    else if (a === 'status') statusOnly = true;
    else if (a in DATASETS) ids.add(a as DatasetId);
    else throw new Error(`data: unknown dataset "${a}"\n${USAGE}`);
  }
  console.log(`datasets folder: ${dataRoot()}${process.env.MIXMASK_DATA ? ' (MIXMASK_DATA)' : ''}`);
  if (statusOnly) {
    for (const spec of Object.values(DATASETS)) {
      const st = datasetStatus(spec);
      console.log(`  ${spec.id.padEnd(14)} ${st.ready ? 'ready' : st.archivePresent ? 'archive present, not extracted' : 'absent'}  ${st.folder}`);
    }
    const fm = fs.existsSync(`${FASHION_MNIST_DEBIAN_DIR}/train-images-idx3-ubyte.gz`);
    console.log(`  ${'fashion-mnist'.padEnd(14)} ${fm ? 'ready' : 'absent (apt-get install dataset-fashion-mnist)'}  ${FASHION_MNIST_DEBIAN_DIR}`);
    if (ids.size === 0) return 0;
  }
  let failed = 0;
  for (const id of ids) {
    try {
      await prepareDataset(DATASETS[id]);
      if (id === 'tiny-imagenet') {
        for (const split of ['train', 'val'] as const) {
          let last = 0;
          const ds = await loadTinyImageNet(split, {
            onProgress: (done, total) => {
              if (done - last >= 10000 || done === total) {
                last = done;
                console.log(`  decoding ${split}: ${done}/${total}`);
              }
            },
          });
          console.log(`Tiny-ImageNet ${split}: ${ds.size} images cached in ${cacheRoot()}`);
        }
      }
    } catch (e) {
      failed++;
      console.error(`\n${(e as Error).message}\n`);
    }
  }
  return failed > 0 ? 2 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
