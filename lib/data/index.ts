/** Datasets, decoding, SSL augmentation recipes and the prefetching loader. */
export type { Dataset, RawBatch, Batch } from './types';
export { dataRoot, cacheRoot, repoRoot, FASHION_MNIST_DEBIAN_DIR } from './paths';
export { ArrayDataset, syntheticDataset } from './array-dataset';
export type { ArrayDatasetInit, SyntheticOptions } from './array-dataset';
export { loadCifar, parseCifarBinary, encodeCifarBinary, CIFAR_SPECS } from './cifar';
export type { CifarKind, Split, LoadCifarOptions, ParsedCifar } from './cifar';
export { loadFashionMnist, parseIdx, FASHION_MNIST_CLASSES } from './idx';
export type { IdxArray, LoadIdxDatasetOptions } from './idx';
export { loadTinyImageNet, tinyImageNetIndex } from './tiny-imagenet';
export type { TinySplit, LoadTinyImageNetOptions } from './tiny-imagenet';
export { ImageFolderDataset, listImages, IMAGE_EXTENSIONS } from './folder';
export type { ImageFolderOptions } from './folder';
export { decodeImageFile, encodeJpeg, imageDecoderName, loadImageBatch, skimagePhoto, SKIMAGE_DATA_DIR } from './decode';
export type { DecodedImage, DecodeOptions } from './decode';
export {
  sampleCrop, sampleCrops, cropResizeFlip, grayscale, adjustBrightness, adjustContrast, adjustSaturation, adjustHue,
  sampleJitter, colorJitter, randomGrayscale, solarize, gaussianBlur, normalize, NORMALIZATION,
} from './augment';
export type { CropSpec, CropBox, JitterSpec, JitterParams, JitterOp, BlurSpec, NormalizeSpec } from './augment';
export { makeRecipe, runNormalization, twoViews, augmentView, testTransform } from './recipes';
export type { AugmentSpec, Recipe, RecipeName, RecipeOptions } from './recipes';
export { DataLoader, rawToBatch, loadAll, twoViewEpoch } from './pipeline';
export type { LoaderOptions, TwoViewBatch } from './pipeline';
export { DATASETS, prepareDataset, datasetStatus, manualInstructions, md5File, READY_MARKER } from './download';
export type { DatasetId, RemoteDataset, PrepareOptions, DatasetState } from './download';
export { loadSplits, DATASET_NAMES } from './named';
export type { DatasetName } from './named';
export { SubsetDataset } from './subset';
export { classBalancedDraw, validationSplit } from './split';
export type { ClassBalancedDraw, ValidationSplit, ValidationSplitSpec } from './split';
