/**
 * MixMask and Un-Mix views (docs/method.md#grid-masks): g×g block / discrete grids, their nearest upsampling to
 * pixel masks, mixing with a partner (flip or permutation), erase, Un-Mix mixup / CutMix, and
 * the inverse re-indexing the asymmetric loss needs. Pure functions of (batch, rng, options);
 * they know nothing of models.
 */
export {
  blockGrid,
  discreteGrid,
  makeGrid,
  makeGrids,
  cellIndex,
  cellSpans,
  pixelLambda,
  cellLambda,
  countComponents,
  gridToString,
  checkGridSize,
  checkRatio,
  checkImageSize,
} from './grid';
export type { Grid, MaskType, BlockOptions } from './grid';
export {
  upsampleGrid,
  flipIndex,
  permutationIndex,
  inverseIndex,
  permuteRows,
  mixWithPartner,
  eraseWith,
  mixupWithPartner,
  cutmixBox,
  boxLambda,
  boxMask,
} from './mix';
export type { Box } from './mix';
export { makeViews, makeView, unmix, partnerShares, disposeView, disposeViews, resolveViewSpec } from './views';
export type { ViewSpec, ViewMethod, View, ViewKind } from './views';
export { encodePng, imageDataUri, imagePixels, imageGridFigure, gridHeatmapFigure, maskDrawStats } from './figures';
export type { MaskFigure, ImagePanel, MaskDrawStats } from './figures';
