export { Module } from './module';
export { Conv2d, BatchNorm, Linear, convBn } from './layers';
export type { BatchNormOptions } from './layers';
export { ResNet, resnet18, resnet50 } from './resnet';
export type { ResNetConfig, ResNetDepth, ResNetStem } from './resnet';
export { MlpHead } from './heads';
export type { MlpOptions } from './heads';
export { FUSED_BATCH_NORM_KERNEL, batchNormTrain, batchNormTrainComposite, hasFusedBatchNorm } from '../backend/batchnorm-op';
