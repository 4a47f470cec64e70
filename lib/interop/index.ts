/**
 * Weights interop with PyTorch: torchvision-named .safetensors export/import, MoCo-style
 * checkpoints, and .pth files through the user's own PyTorch. See docs/interop.md.
 */
export { permuteAxes, torchShape, toTorchTensor, fromTorchTensor } from './layout';
export { resnetStateSpec, detectBackbonePrefix, inferResNetConfig, isHeadKey } from './arch';
export type { StateSpecEntry } from './arch';
export { headToTorch, checkpointHeads } from './heads';
export type { TorchHead, TorchModuleSpec } from './heads';
export {
  TORCH_META, torchvisionRecipe, backboneToTorch, resnetToTorchState, exportResNetToTorch, exportCheckpointToTorch,
} from './export';
export type { TorchExportOptions, TorchExportResult } from './export';
export {
  torchStateToBackbone, readTorchStateDict, importTorchBackbone, importTorchBackboneWithReport, importTorchToCheckpoint,
} from './import';
export type { TorchImportOptions, TorchImportReport, TorchImportToCheckpointOptions } from './import';
export {
  PTH_SCRIPT_NAME, pthScriptPath, isPickleCheckpoint, pythonCandidates, findTorchPython, pthConvertCommand,
  safetensorsNameFor, convertPthToSafetensors, withSafetensors,
} from './pth';
export type { PthConvertOptions } from './pth';
