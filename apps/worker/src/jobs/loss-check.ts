/**
 * The check of a training that completed: the divergence guard (engine/divergence.ts) stops a run
 * only on a non-finite loss or gradient, so a run whose loss grew by orders of magnitude, or whose
 * final loss is not a finite number, can still complete. Such a job stays `completed` (its model and
 * metrics are kept for the caller to look at) with `diverged: true` in its result and a warning
 * event `loss_diverged`; DIVERGED_LOSS_FACTOR sets how much growth over the first epoch counts.
 */
import type { ProgressEvent } from '@relu-lstm/jobs';

/** `code` of the warning event of a completed training flagged as diverged. */
export const LOSS_DIVERGED = 'loss_diverged';

export interface LossBlowup {
  firstEpochLoss: number | null;
  finalLoss: number | null;
  factor: number;
  message: string;
}

/** The loss of the first epoch: its closing point's, else its first point's. */
function firstEpochLoss(metrics: readonly ProgressEvent[]): number | null {
  if (metrics.length === 0) return null;
  const first = metrics[0].epoch;
  return (metrics.find((p) => p.epoch === first && p.epochEnd) ?? metrics[0]).loss;
}

/** Why a completed training counts as diverged, or null when its final loss is finite and within `factor` of the first epoch's. */
export function lossBlowup(
  metrics: readonly ProgressEvent[],
  finalLoss: number | null,
  factor: number,
): LossBlowup | null {
  const first = firstEpochLoss(metrics);
  if (finalLoss === null && first === null) return null;
  if (finalLoss === null || !Number.isFinite(finalLoss)) {
    return {
      firstEpochLoss: first,
      finalLoss,
      factor,
      message: `the training completed with a final loss of ${String(finalLoss)}, not a finite number`,
    };
  }
  if (first === null || !Number.isFinite(first) || finalLoss <= factor * Math.abs(first)) return null;
  return {
    firstEpochLoss: first,
    finalLoss,
    factor,
    message: `the final loss ${finalLoss} is more than ${factor} times the first epoch's ${first} (DIVERGED_LOSS_FACTOR)`,
  };
}
