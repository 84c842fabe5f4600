/**
 * The CSV form of a dataset upload, parsed as a stream. Layout (documented in docs/api.md):
 *
 *   sample,step,x0,x1,...,y0,...
 *   a,0,0.1,0.2,...,1.5
 *   a,1,0.3,0.4,...,1.7
 *   b,0,...
 *
 * - a header row is required: `sample`, `step`, then `x0..x{I-1}` and `y0..y{O-1}` (any order of
 *   the x and y columns; the numbers say the index), each column once;
 * - one row per time step; `sample` is any label, samples keep the order of their first row;
 *   `step` is 0-based and a sample's steps must be 0, 1, 2, ... without gaps (rows of a sample may
 *   be interleaved with other samples' rows);
 * - numbers are plain decimals (`-1.5`, `2`, `1e-3`; no hex, no `+`, no spaces, no NaN/Infinity)
 *   that fit float32; `step` is a plain integer;
 * - samples shorter than the longest are padded with zeros and get `lengths`;
 * - targets: y on every row gives per-step targets `y [N, T, O]`; y only on each sample's last row
 *   (empty cells elsewhere) gives one target per sequence `y [N, O]`.
 * No quoting: cells are numbers or labels without commas. Blank lines are skipped.
 *
 * Memory: rows are validated as they arrive and spooled to a temporary file as float64 records;
 * what stays in memory is one line and, per sample, its label, length and last row's line. The
 * samples are then written in order in passes over the spool, each holding at most
 * `PASS_BYTES` of rows (one sample larger than that is copied straight through).
 */
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FLOAT32_EXPECTED,
  fitsFloat32,
  type DatasetWriter,
  type JobContract,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import type { ParsedUpload } from './stream-parse';

const MAX_ISSUES = 20;
/** Longest line read; a row of 4096 features of 20 characters is 80 KB. */
const MAX_LINE = 1024 * 1024;
/** Rows of samples held at once while writing them out in order. */
const PASS_BYTES = 8 * 1024 * 1024;
/** A number as a CSV cell: optional minus, digits, optional fraction, optional exponent. */
const PLAIN_DECIMAL = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const PLAIN_INT = /^\d+$/;

interface Header {
  line: number;
  names: string[];
  sCol: number;
  tCol: number;
  xCols: number[];
  yCols: number[];
}

/** Record layout in the spool: sample index, line, has y (0/1), then I x values and O y values. */
const REC_HEAD = 3;

export class CsvDatasetParser {
  readonly issues: ValidationIssue[] = [];
  private carry = '';
  private lineNo = 0;
  private header: Header | null = null;
  private readonly labels = new Map<string, number>();
  private readonly steps: number[] = [];
  private readonly lastLine: number[] = [];
  private readonly lastHasY: boolean[] = [];
  private rows = 0;
  private rowsWithY = 0;
  /** Lines of rows with y that were not their sample's last (an issue unless every row has y). */
  private readonly yNotLast: number[] = [];
  /** Records of the chunk being read, spooled after it. */
  private batch = new Float64Array(16 * 1024);
  private batchLen = 0;
  private spoolFile = '';
  private spool: WriteStream | null = null;

  constructor(private readonly contract: JobContract) {}

  get full(): boolean {
    return this.issues.length >= MAX_ISSUES;
  }

  private fail(line: number, column: string, message: string, expected: string, received: string): void {
    if (this.issues.length < MAX_ISSUES)
      this.issues.push({
        path: `line ${line}${column ? `.${column}` : ''}`,
        code: 'invalid_csv',
        message,
        expected,
        received,
      });
  }

  async write(text: string): Promise<void> {
    let from = 0;
    const all = this.carry + text;
    for (let nl = all.indexOf('\n', from); nl >= 0 && !this.full; nl = all.indexOf('\n', from)) {
      this.line(all.slice(from, all[nl - 1] === '\r' ? nl - 1 : nl));
      from = nl + 1;
    }
    this.carry = all.slice(from);
    if (this.carry.length > MAX_LINE)
      this.fail(
        this.lineNo + 1,
        '',
        'line too long',
        `at most ${MAX_LINE} characters`,
        `${this.carry.length} and more`,
      );
    await this.flushSpool();
  }

  private line(raw: string): void {
    this.lineNo++;
    if (this.lineNo === 1) raw = raw.replace(/^\uFEFF/, '');
    if (raw.trim() === '') return;
    if (!this.header) return this.readHeader(raw);
    this.readRow(raw, this.header);
  }

  private readHeader(raw: string): void {
    const line = this.lineNo;
    const names = raw.split(',').map((h) => h.trim());
    const xCols: number[] = [];
    const yCols: number[] = [];
    const seen = new Set<string>();
    for (let c = 0; c < names.length; c++) {
      const h = names[c];
      if (seen.has(h)) this.fail(line, h, 'duplicate column', 'each column once', `${JSON.stringify(h)} twice`);
      seen.add(h);
      const m = /^([xy])(\d+)$/.exec(h);
      if (m) (m[1] === 'x' ? xCols : yCols)[Number(m[2])] = c;
      else if (h !== 'sample' && h !== 'step')
        this.fail(line, h, 'unknown column', 'sample, step, x0.., y0..', JSON.stringify(h));
    }
    const sCol = names.indexOf('sample');
    const tCol = names.indexOf('step');
    if (sCol < 0 || tCol < 0) this.fail(line, '', 'missing column', 'columns sample and step', names.join(','));
    for (const [name, cols] of [
      ['x', xCols],
      ['y', yCols],
    ] as const) {
      if (cols.length === 0) this.fail(line, '', `no ${name} columns`, `${name}0, ${name}1, ...`, names.join(','));
      for (let i = 0; i < cols.length; i++)
        if (cols[i] === undefined)
          this.fail(
            line,
            `${name}${i}`,
            'missing column',
            `${name}0..${name}${cols.length - 1} without gaps`,
            `no ${name}${i}`,
          );
    }
    this.header = { line, names, sCol, tCol, xCols, yCols };
  }

  private readRow(raw: string, h: Header): void {
    if (this.issues.length) return; // a bad header: the rows cannot be read
    const line = this.lineNo;
    const cells = raw.split(',');
    if (cells.length !== h.names.length)
      return this.fail(line, '', 'wrong number of cells', `${h.names.length} cells`, `${cells.length}`);
    const label = cells[h.sCol];
    let s = this.labels.get(label);
    if (s === undefined) {
      s = this.labels.size;
      if (s >= this.contract.limits.maxSamples)
        return this.fail(
          line,
          'sample',
          'too many samples',
          `at most ${this.contract.limits.maxSamples} samples`,
          `sample ${s + 1}`,
        );
      this.labels.set(label, s);
      this.steps.push(0);
      this.lastLine.push(0);
      this.lastHasY.push(false);
    }
    const stepCell = cells[h.tCol];
    if (!PLAIN_INT.test(stepCell) || Number(stepCell) !== this.steps[s]) {
      return this.fail(
        line,
        'step',
        'steps of a sample must be 0, 1, 2, ... in order',
        String(this.steps[s]),
        JSON.stringify(stepCell),
      );
    }
    if (this.steps[s] >= this.contract.limits.maxSeqLen)
      return this.fail(
        line,
        'step',
        'sequence too long',
        `sequences of at most ${this.contract.limits.maxSeqLen} steps`,
        `step ${this.steps[s]}`,
      );
    const I = h.xCols.length;
    const O = h.yCols.length;
    const rec = this.record(REC_HEAD + I + O);
    let ok = true;
    const num = (c: number, name: string, at: number) => {
      const cell = cells[c];
      if (!PLAIN_DECIMAL.test(cell)) {
        ok = false;
        return this.fail(
          line,
          name,
          'not a plain decimal number',
          'a number such as -1.5, 2 or 1e-3',
          JSON.stringify(cell),
        );
      }
      const v = Number(cell);
      if (!fitsFloat32(v)) {
        ok = false;
        return this.fail(line, name, 'out of float32 range', FLOAT32_EXPECTED, cell);
      }
      rec[at] = v;
    };
    h.xCols.forEach((c, i) => num(c, `x${i}`, REC_HEAD + i));
    const hasY = !h.yCols.every((c) => cells[c] === '');
    if (hasY) h.yCols.forEach((c, i) => num(c, `y${i}`, REC_HEAD + I + i));
    if (!ok) return;
    if (this.steps[s] > 0 && this.lastHasY[s] && this.yNotLast.length < MAX_ISSUES)
      this.yNotLast.push(this.lastLine[s]);
    this.steps[s]++;
    this.lastLine[s] = line;
    this.lastHasY[s] = hasY;
    this.rows++;
    if (hasY) this.rowsWithY++;
    rec[0] = s;
    rec[1] = line;
    rec[2] = hasY ? 1 : 0;
    this.batchLen += rec.length;
  }

  /** Room for the next record at the end of the batch (kept only if the row is valid). */
  private record(width: number): Float64Array {
    if (this.batchLen + width > this.batch.length) {
      const grown = new Float64Array(Math.max(2 * this.batch.length, this.batchLen + width));
      grown.set(this.batch.subarray(0, this.batchLen));
      this.batch = grown;
    }
    const rec = this.batch.subarray(this.batchLen, this.batchLen + width);
    rec.fill(0);
    return rec;
  }

  private async flushSpool(): Promise<void> {
    if (this.batchLen === 0) return;
    if (!this.spool) {
      this.spoolFile = join(await mkdtemp(join(tmpdir(), 'dataset-csv-')), 'rows.f64');
      this.spool = createWriteStream(this.spoolFile);
    }
    const data = Buffer.from(this.batch.buffer, 0, this.batchLen * 8);
    this.batch = new Float64Array(this.batch.length);
    this.batchLen = 0;
    if (!this.spool.write(data)) await new Promise<void>((r) => this.spool!.once('drain', r));
  }

  /** After the last chunk: checks what needs every row, then writes the samples in order. */
  async finish(writer: DatasetWriter): Promise<ParsedUpload> {
    try {
      if (!this.full && this.carry) await this.write('\n');
      await this.closeSpool();
      const issues = this.finalIssues();
      if (issues.length) return { ok: false, issues };
      const h = this.header!;
      const N = this.labels.size;
      const T = Math.max(...this.steps);
      const I = h.xCols.length;
      const O = h.yCols.length;
      const perStep = this.rowsWithY === this.rows;
      await this.writeSamples(writer, { N, T, I, O, perStep });
      const ragged = this.steps.some((n) => n !== T);
      if (ragged) {
        for (let i = 0; i < N; i += 4096) writer.append('lengths', [], this.steps.slice(i, i + 4096));
      }
      const base = {
        samples: N,
        seqLen: T,
        inputSize: I,
        targetShape: perStep ? [N, T, O] : [N, O],
        hasLengths: ragged,
      };
      const limitIssues = this.limitIssues(base);
      return limitIssues.length ? { ok: false, issues: limitIssues } : { ok: true, value: base };
    } finally {
      await this.dispose();
    }
  }

  private finalIssues(): ValidationIssue[] {
    if (this.issues.length) return this.issues;
    if (!this.header)
      return [
        {
          path: 'line 1',
          code: 'invalid_csv',
          message: 'empty upload',
          expected: 'a header row and data rows',
          received: 'nothing',
        },
      ];
    if (this.rows === 0)
      return [
        {
          path: `line ${this.header.line + 1}`,
          code: 'invalid_csv',
          message: 'no data rows',
          expected: 'at least one row',
          received: 'none',
        },
      ];
    if (this.rowsWithY === this.rows) return [];
    const found: Array<{ line: number; issue: ValidationIssue }> = [];
    const at = (line: number, message: string, expected: string, received: string) =>
      found.push({ line, issue: { path: `line ${line}.y0`, code: 'invalid_csv', message, expected, received } });
    for (const line of this.yNotLast)
      at(line, "targets on every row or only on each sample's last row", 'empty cells', 'y values');
    for (let s = 0; s < this.lastHasY.length && found.length < 2 * MAX_ISSUES; s++) {
      if (!this.lastHasY[s]) at(this.lastLine[s], "missing target on a sample's last row", 'y values', 'empty cells');
    }
    return found
      .sort((a, b) => a.line - b.line)
      .slice(0, MAX_ISSUES)
      .map((f) => f.issue);
  }

  /** The limits `DatasetInput` puts on the arrays, as issues on `x` / `y`. */
  private limitIssues(d: {
    samples: number;
    seqLen: number;
    inputSize: number;
    targetShape: number[];
  }): ValidationIssue[] {
    const l = this.contract.limits;
    const issues: ValidationIssue[] = [];
    const add = (path: string, expected: string, received: number) =>
      issues.push({
        path,
        code: 'custom',
        message: `expected ${expected}, received ${received}`,
        expected,
        received: String(received),
      });
    if (d.inputSize > l.maxInputSize) add('x', `at most ${l.maxInputSize} features`, d.inputSize);
    const xNumbers = d.samples * d.seqLen * d.inputSize;
    if (xNumbers > l.maxInlineElements) add('x', `at most ${l.maxInlineElements} numbers`, xNumbers);
    const yNumbers = d.targetShape.reduce((a, b) => a * b, 1);
    if (yNumbers > l.maxInlineElements) add('y', `at most ${l.maxInlineElements} numbers`, yNumbers);
    return issues;
  }

  private async writeSamples(
    writer: DatasetWriter,
    d: { N: number; T: number; I: number; O: number; perStep: boolean },
  ): Promise<void> {
    const width = REC_HEAD + d.I + d.O;
    const sampleBytes = d.T * width * 8;
    const perPass = Math.max(1, Math.floor(PASS_BYTES / sampleBytes));
    const recBytes = width * 8;
    // One read buffer and one pass buffer, reused by every pass.
    const buffers = {
      read: Buffer.alloc(Math.max(1, Math.floor((1024 * 1024) / recBytes)) * recBytes),
      held: perPass > 1 ? new Float64Array(perPass * d.T * width) : null,
    };
    const fh = await open(this.spoolFile, 'r');
    try {
      for (let a = 0; a < d.N; a += perPass) {
        const b = Math.min(d.N, a + perPass);
        await this.pass(fh, writer, { ...d, a, b, width }, buffers);
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * Writes samples [a, b) from one read of the spool: records of a sample come in step order, so
   * one sample is copied straight through and several are gathered in a buffer first.
   */
  private async pass(
    fh: FileHandle,
    writer: DatasetWriter,
    p: { N: number; T: number; I: number; O: number; perStep: boolean; a: number; b: number; width: number },
    buffers: { read: Buffer; held: Float64Array | null },
  ): Promise<void> {
    const { T, I, a, b, width, perStep } = p;
    const held = b - a === 1 ? null : buffers.held;
    const filled = new Uint32Array(b - a);
    const emit = (s: number, t: number, rec: Float64Array) => {
      writer.append('x', [s, t], rec.subarray(REC_HEAD, REC_HEAD + I));
      if (perStep) writer.append('y', [s, t], rec.subarray(REC_HEAD + I));
      else if (t === this.steps[s] - 1) writer.append('y', [s], rec.subarray(REC_HEAD + I));
    };
    const buf = buffers.read;
    for (let pos = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      const recs = new Float64Array(buf.buffer, buf.byteOffset, bytesRead / 8);
      for (let r = 0; r < recs.length; r += width) {
        const s = recs[r];
        if (s < a || s >= b) continue;
        const rec = recs.subarray(r, r + width);
        const t = filled[s - a]++;
        if (held) held.set(rec, ((s - a) * T + t) * width);
        else emit(s, t, rec);
      }
      await writer.flush();
    }
    const zeros = new Float64Array(width);
    for (let s = a; s < b; s++) {
      for (let t = held ? 0 : this.steps[s]; t < T; t++) {
        const rec =
          held && t < this.steps[s] ? held.subarray(((s - a) * T + t) * width, ((s - a) * T + t + 1) * width) : zeros;
        emit(s, t, rec);
      }
      await writer.flush();
    }
  }

  private async closeSpool(): Promise<void> {
    await this.flushSpool();
    const spool = this.spool;
    if (spool)
      await new Promise<void>((resolve, reject) => spool.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }

  /** Removes the spool; safe to call more than once. */
  async dispose(): Promise<void> {
    this.spool?.destroy();
    this.spool = null;
    if (this.spoolFile) await rm(join(this.spoolFile, '..'), { recursive: true, force: true });
    this.spoolFile = '';
  }
}

/** Parses a CSV upload from its text chunks into `writer`; stops reading once `MAX_ISSUES` are found. */
export async function parseCsvUpload(
  chunks: AsyncIterable<string>,
  contract: JobContract,
  writer: DatasetWriter,
): Promise<ParsedUpload> {
  const parser = new CsvDatasetParser(contract);
  try {
    for await (const text of chunks) {
      await parser.write(text);
      if (parser.full) break;
    }
  } catch (e) {
    await parser.dispose();
    throw e;
  }
  return parser.finish(writer);
}
