/** Files: safetensors, atomic writes, JSON lines. */
export { encodeSafetensors, decodeSafetensors, writeSafetensorsFile, readSafetensorsFile } from './safetensors';
export type { SafeDtype, SafeTensor } from './safetensors';
export { writeFileAtomic, writeJsonAtomic } from './atomic';
export { readJsonl, appendJsonl } from './jsonl';
