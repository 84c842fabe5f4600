/**
 * Bounds of what a job may ask for. The payload schemas are built from one `PayloadLimits` object
 * (`makeContract(limits)`), so a deployment can tighten them from its validated configuration
 * (`LIMIT_*` of apps/api) without touching the schemas. Out-of-range values fail validation with the bound named.
 */
export interface PayloadLimits {
  /** Largest `model.inputSize`. */
  maxInputSize: number;
  /** Largest `model.hiddenSize`. */
  maxHiddenSize: number;
  /** Largest `model.numLayers`. */
  maxLayers: number;
  /** Largest `model.outputSize`. */
  maxOutputSize: number;
  /** Longest sequence (T) in any inline array or synthetic generator. */
  maxSeqLen: number;
  /** Most samples (N) in a training set, inline, uploaded or synthetic. */
  maxSamples: number;
  /** Largest `training.batchSize`. */
  maxBatchSize: number;
  /** Largest `training.epochs`. */
  maxEpochs: number;
  /** Most numbers in one inline array (`x`, `y`, `inputs`, a state-dict entry...). */
  maxInlineElements: number;
  /** Largest estimated engine memory of one job, in MB (`estimateJobCost`, cost.ts); the worker bounds its engine by it too. */
  maxJobMemoryMb: number;
}

export const DEFAULT_LIMITS: Readonly<PayloadLimits> = Object.freeze({
  maxInputSize: 4096,
  maxHiddenSize: 4096,
  maxLayers: 16,
  maxOutputSize: 4096,
  maxSeqLen: 100_000,
  maxSamples: 1_000_000,
  maxBatchSize: 65_536,
  maxEpochs: 100_000,
  maxInlineElements: 20_000_000,
  // Four engines of this size, the api and Redis fit a 2-core, 24 GB machine.
  maxJobMemoryMb: 4096,
});
