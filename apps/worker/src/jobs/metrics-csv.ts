/**
 * `metrics.csv`: one row per metric point of the job (every attempt, cut at each resume), with a
 * header. Empty cells are nulls (valLoss off an epoch end, gradNorm not computed). The job's name and
 * tags (JSON) repeat on every row, so rows of several jobs' files stay told apart once concatenated.
 */
import type { JobLabels, ProgressEvent } from '@relu-lstm/jobs';

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

/** Columns after the metric's: the job's name and its tags as a JSON object (empty cells: none). */
export const METRICS_CSV_LABEL_COLUMNS = ['name', 'tags'] as const;

/** A CSV cell: quoted (quotes doubled) when it holds a comma, a quote or a line break. */
const quoted = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export function metricsCsv(points: readonly ProgressEvent[], labels: JobLabels = {}): string {
  const cell = (v: number | boolean | null | undefined) =>
    v === null || v === undefined ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  const labelCells = [quoted(labels.name ?? ''), labels.tags ? quoted(JSON.stringify(labels.tags)) : ''].join(',');
  const lines = [[...METRICS_CSV_COLUMNS, ...METRICS_CSV_LABEL_COLUMNS].join(',')];
  for (const p of points) lines.push(`${METRICS_CSV_COLUMNS.map((c) => cell(p[c])).join(',')},${labelCells}`);
  return lines.join('\n') + '\n';
}
