/**
 * `metrics.csv`: one row per metric point of the job (every attempt, cut at each resume), with a
 * header. Empty cells are nulls (valLoss off an epoch end, gradNorm not computed).
 */
import type { ProgressEvent } from '@relu-lstm/jobs';

export const METRICS_CSV_COLUMNS = [
  'epoch',
  'step',
  'loss',
  'valLoss',
  'gradNorm',
  'samplesPerSec',
  'elapsedMs',
  'epochEnd',
  'learningRate',
] as const;

export function metricsCsv(points: readonly ProgressEvent[]): string {
  const cell = (v: number | boolean | null | undefined) =>
    v === null || v === undefined ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  const lines = [METRICS_CSV_COLUMNS.join(',')];
  for (const p of points) lines.push(METRICS_CSV_COLUMNS.map((c) => cell(p[c])).join(','));
  return lines.join('\n') + '\n';
}
