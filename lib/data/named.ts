import { syntheticDataset } from './array-dataset';
import { loadCifar } from './cifar';
import { loadFashionMnist } from './idx';
import { loadTinyImageNet } from './tiny-imagenet';
import type { Dataset } from './types';

/** The datasets the command lines and presets know by name, with their train and test splits. */
export type DatasetName = 'cifar100' | 'cifar10' | 'tiny-imagenet' | 'fashion-mnist' | 'synthetic';
export const DATASET_NAMES: readonly DatasetName[] = ['cifar100', 'cifar10', 'tiny-imagenet', 'fashion-mnist', 'synthetic'];

export async function loadSplits(name: DatasetName): Promise<{ train: Dataset; test: Dataset }> {
  switch (name) {
    case 'fashion-mnist':
      return { train: loadFashionMnist('train'), test: loadFashionMnist('test') };
    case 'cifar10':
    case 'cifar100':
      return { train: loadCifar(name, 'train'), test: loadCifar(name, 'test') };
    case 'tiny-imagenet':
      return { train: await loadTinyImageNet('train'), test: await loadTinyImageNet('val') };
    case 'synthetic':
      // Same generator and classes for both splits, different draws.
      return { train: syntheticDataset({ size: 512, seed: 0 }), test: syntheticDataset({ size: 128, seed: 0, sampleSeed: 1 }) };
    default:
      throw new Error(`dataset must be one of ${DATASET_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  }
}
