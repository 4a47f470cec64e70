import type { Dataset, RawBatch } from './types';

/** A view of some samples of a dataset, in the order of `indices` (no pixels copied). */
export class SubsetDataset implements Dataset {
  readonly name: string;
  readonly size: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  readonly indices: Int32Array;

  constructor(readonly base: Dataset, indices: ArrayLike<number>, name = `${base.name}-subset`) {
    this.indices = Int32Array.from(indices);
    for (const i of this.indices) {
      if (i < 0 || i >= base.size) throw new Error(`SubsetDataset: index ${i} out of range [0, ${base.size}) of ${base.name}`);
    }
    this.name = name;
    this.size = this.indices.length;
    this.numClasses = base.numClasses;
    this.classNames = base.classNames;
    this.height = base.height;
    this.width = base.width;
    this.channels = base.channels;
  }

  label(i: number): number {
    return this.base.label(this.indices[i]);
  }

  async read(indices: ArrayLike<number>): Promise<RawBatch> {
    const mapped = new Int32Array(indices.length);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new Error(`${this.name}: index ${i} out of range [0, ${this.size})`);
      mapped[k] = this.indices[i];
    }
    const raw = await this.base.read(mapped);
    // Report indices in this view's numbering.
    return { ...raw, indices: Int32Array.from(indices) };
  }
}
