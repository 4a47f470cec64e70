/** Evaluators: feature extraction, weighted kNN monitor, linear probe, semi-supervised and supervised fine-tuning. */
export type { ProgressInfo, ProgressFn, EvalTransform } from './common';
export { countTopK, resolveMilestones } from './common';
export { extractFeatures, backboneFeatures } from './features';
export type { FeatureSet, LabelledFeatures, ExtractOptions, FeatureFn } from './features';
export { knnNeighbours, knnVote, knnClassify, knnMonitor } from './knn';
export type { FeatureInput, NeighbourOptions, Neighbours, VoteOptions, KnnOptions, KnnResult, KnnMonitorOptions, KnnMonitorResult } from './knn';
export { labelSubset, randomIndices } from './subsets';
export { SubsetDataset } from '../data/subset';
export type { LabelSubsetOptions, LabelSubset } from './subsets';
export { trainLinearOnFeatures, linearProbe, LINEAR_PROBE_DEFAULTS } from './linear';
export type { LinearTrainOptions, LinearResult, LinearProbeOptions } from './linear';
export { fineTune, canTrainConvolutions, FINETUNE_PRESETS, FINETUNE_DEFAULTS } from './finetune';
export type { FinetuneProtocol, FineTuneOptions, FineTuneResult } from './finetune';
