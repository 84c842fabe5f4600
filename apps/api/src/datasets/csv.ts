/**
 * The CSV form of a dataset upload. Layout (documented in docs/api.md):
 *
 *   sample,step,x0,x1,...,y0,...
 *   a,0,0.1,0.2,...,1.5
 *   a,1,0.3,0.4,...,1.7
 *   b,0,...
 *
 * - a header row is required: `sample`, `step`, then `x0..x{I-1}` and `y0..y{O-1}` (any order of
 *   the x and y columns; the numbers say the index);
 * - one row per time step; `sample` is any label, samples keep the order of their first row;
 *   `step` is 0-based and a sample's steps must be 0, 1, 2, ... without gaps (rows of a sample may
 *   be interleaved with other samples' rows);
 * - samples shorter than the longest are padded with zeros and get `lengths`;
 * - targets: y on every row gives per-step targets `y [N, T, O]`; y only on each sample's last row
 *   (empty cells elsewhere) gives one target per sequence `y [N, O]`.
 * No quoting: cells are numbers or labels without commas. Blank lines are skipped.
 */
import type { ValidationIssue } from '@relu-lstm/jobs';

export type CsvResult =
  | { ok: true; value: { x: number[][][]; y: number[][] | number[][][]; lengths?: number[] } }
  | { ok: false; issues: ValidationIssue[] };

const MAX_ISSUES = 20;

export function parseDatasetCsv(text: string): CsvResult {
  const issues: ValidationIssue[] = [];
  const fail = (line: number, column: string, message: string, expected: string, received: string) => {
    if (issues.length < MAX_ISSUES) issues.push({ path: `line ${line}${column ? `.${column}` : ''}`, code: 'invalid_csv', message, expected, received });
  };
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let li = 0;
  while (li < lines.length && lines[li].trim() === '') li++;
  if (li >= lines.length) return { ok: false, issues: [{ path: 'line 1', code: 'invalid_csv', message: 'empty upload', expected: 'a header row and data rows', received: 'nothing' }] };
  const header = lines[li].split(',').map((h) => h.trim());
  const headerLine = li + 1;
  const col = (name: string) => header.indexOf(name);
  const xCols: number[] = [];
  const yCols: number[] = [];
  for (let c = 0; c < header.length; c++) {
    const h = header[c];
    const m = /^([xy])(\d+)$/.exec(h);
    if (m) (m[1] === 'x' ? xCols : yCols)[Number(m[2])] = c;
    else if (h !== 'sample' && h !== 'step') fail(headerLine, h, 'unknown column', 'sample, step, x0.., y0..', JSON.stringify(h));
  }
  if (col('sample') < 0 || col('step') < 0) fail(headerLine, '', 'missing column', 'columns sample and step', header.join(','));
  for (const [name, cols] of [['x', xCols], ['y', yCols]] as const) {
    if (cols.length === 0) fail(headerLine, '', `no ${name} columns`, `${name}0, ${name}1, ...`, header.join(','));
    for (let i = 0; i < cols.length; i++) if (cols[i] === undefined) fail(headerLine, `${name}${i}`, 'missing column', `${name}0..${name}${cols.length - 1} without gaps`, `no ${name}${i}`);
  }
  if (issues.length) return { ok: false, issues };

  const sCol = col('sample');
  const tCol = col('step');
  interface Row { x: number[]; y: number[] | null; line: number }
  const samples = new Map<string, Row[]>();
  for (li = li + 1; li < lines.length; li++) {
    const raw = lines[li];
    if (raw.trim() === '') continue;
    const line = li + 1;
    const cells = raw.split(',').map((c) => c.trim());
    if (cells.length !== header.length) {
      fail(line, '', 'wrong number of cells', `${header.length} cells`, `${cells.length}`);
      continue;
    }
    const label = cells[sCol];
    const step = Number(cells[tCol]);
    const rows = samples.get(label) ?? [];
    if (!samples.has(label)) samples.set(label, rows);
    if (!Number.isInteger(step) || step !== rows.length) {
      fail(line, 'step', 'steps of a sample must be 0, 1, 2, ... in order', String(rows.length), JSON.stringify(cells[tCol]));
      continue;
    }
    const num = (c: number, name: string): number => {
      const v = cells[c] === '' ? NaN : Number(cells[c]);
      if (!Number.isFinite(v)) fail(line, name, 'not a finite number', 'a number', JSON.stringify(cells[c]));
      return v;
    };
    const x = xCols.map((c, i) => num(c, `x${i}`));
    const yEmpty = yCols.every((c) => cells[c] === '');
    const y = yEmpty ? null : yCols.map((c, i) => num(c, `y${i}`));
    rows.push({ x, y, line });
  }
  if (issues.length) return { ok: false, issues };
  if (samples.size === 0) return { ok: false, issues: [{ path: `line ${headerLine + 1}`, code: 'invalid_csv', message: 'no data rows', expected: 'at least one row', received: 'none' }] };

  const all = [...samples.values()];
  const T = Math.max(...all.map((r) => r.length));
  const I = xCols.length;
  const O = yCols.length;
  const perStep = all.every((rows) => rows.every((r) => r.y !== null));
  if (!perStep) {
    for (const rows of all) {
      rows.forEach((r, t) => {
        const last = t === rows.length - 1;
        if (last && r.y === null) fail(r.line, 'y0', "missing target on a sample's last row", 'y values', 'empty cells');
        if (!last && r.y !== null) fail(r.line, 'y0', 'targets on every row or only on each sample\'s last row', 'empty cells', 'y values');
      });
    }
    if (issues.length) return { ok: false, issues };
  }
  const zeros = (n: number) => new Array<number>(n).fill(0);
  const x = all.map((rows) => Array.from({ length: T }, (_, t) => (t < rows.length ? rows[t].x : zeros(I))));
  const y = perStep
    ? all.map((rows) => Array.from({ length: T }, (_, t) => (t < rows.length ? (rows[t].y as number[]) : zeros(O))))
    : all.map((rows) => rows[rows.length - 1].y as number[]);
  const ragged = all.some((rows) => rows.length !== T);
  return { ok: true, value: ragged ? { x, y, lengths: all.map((r) => r.length) } : { x, y } };
}
