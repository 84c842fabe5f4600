/**
 * The streaming dataset parsers against the in-memory rules they replace: every body below gets
 * the issue `validate(contract.DatasetInput, JSON.parse(body))` gives (the first one), and a valid
 * body is stored as `JSON.stringify` would write it, whatever the chunk boundaries.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDatasetStore, makeContract, validate, DEFAULT_LIMITS, type JobContract } from '@relu-lstm/jobs';
import { parseCsvUpload } from '../src/datasets/csv';
import { JsonSyntaxError } from '../src/datasets/json-tokens';
import { parseJsonUpload } from '../src/datasets/stream-parse';

const contract = makeContract({ ...DEFAULT_LIMITS, maxSamples: 100, maxSeqLen: 50 });
let dir: string;
let store: FileDatasetStore;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dataset-stream-'));
  store = new FileDatasetStore(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Splits text at every `size` characters (a multi-chunk body with tokens cut in half). */
// eslint-disable-next-line @typescript-eslint/require-await -- an async source, as a request body is
async function* chunks(text: string, size: number): AsyncGenerator<string> {
  for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
}

type Parse = typeof parseJsonUpload;

async function run(parse: Parse, text: string, size: number, c: JobContract = contract) {
  const id = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
  const writer = await store.writer(id);
  const r = await parse(chunks(text, size), c, writer);
  if (!r.ok) {
    await writer.abort();
    return { r, stored: null };
  }
  await writer.commit();
  return { r, stored: JSON.parse(await readFile(join(dir, `${id}.json`), 'utf8')) };
}

const seq = (n: number, t: number, i: number) =>
  Array.from({ length: n }, (_, a) =>
    Array.from({ length: t }, (_, b) => Array.from({ length: i }, (_, c) => a * 100 + b * 10 + c + 0.25)),
  );

describe('JSON upload', () => {
  const valid: Array<[string, unknown]> = [
    ['one target per sequence', { x: seq(3, 4, 2), y: [[1], [2], [3]], description: 'three' }],
    ['per-step targets, y first', { y: seq(2, 3, 2), x: seq(2, 3, 1) }],
    ['lengths before x', { lengths: [2, 1], x: seq(2, 2, 1), y: [[0.5], [-1e-3]] }],
    ['numbers at the float32 bounds', { x: [[[3.4028234663852886e38, -3.4028234663852886e38, 1e-45]]], y: [[0]] }],
  ];
  test.each(valid)('%s: stored as JSON.stringify writes it, at any chunk size', async (_name, body) => {
    const text = JSON.stringify(body, null, 1);
    const b = body as { x: unknown; y: unknown; lengths?: unknown };
    for (const size of [1, 3, 7, 64, 1 << 20]) {
      const { r, stored } = await run(parseJsonUpload, text, size);
      expect(r.ok).toBe(true);
      expect(stored).toEqual(JSON.parse(JSON.stringify({ x: b.x, y: b.y, lengths: b.lengths })));
    }
  });

  const invalid: Array<[string, unknown]> = [
    ['a string in x', { x: [[['a']]], y: [[1]] }],
    ['x one level too deep', { x: [[[[1]]]], y: [[1]] }],
    ['x one level short', { x: [[1]], y: [[1]] }],
    ['x not an array', { x: 5, y: [[1]] }],
    ['x an object', { x: {}, y: [[1]] }],
    ['an object in x', { x: [[{ a: 1 }]], y: [[1]] }],
    ['a string in y', { x: [[[1]]], y: [['a']] }],
    ['an object in y', { x: [[[1]]], y: [[{}]] }],
    ['null in y', { x: [[[1]]], y: [[null]] }],
    ['a string deep in y', { x: [[[1]]], y: [[['a']]] }],
    ['a number for a y row', { x: [[[1]]], y: [1] }],
    ['a length of 0', { x: [[[1]]], y: [[1]], lengths: [0] }],
    ['a fractional length', { x: [[[1]]], y: [[1]], lengths: [1.5] }],
    ['a length over T', { x: [[[1], [2]]], y: [[1]], lengths: [3] }],
    ['a length over T, lengths first', { lengths: [1, 3], x: seq(2, 2, 1), y: [[1], [2]] }],
    ['too few lengths', { x: seq(2, 2, 1), y: [[1], [2]], lengths: [1] }],
    ['description not a string', { x: [[[1]]], y: [[1]], description: 5 }],
    ['description too long', { x: [[[1]]], y: [[1]], description: 'x'.repeat(501) }],
    ['y missing', { x: [[[1]]] }],
    ['an unknown field', { x: [[[1]]], y: [[1]], tenant: { a: [1, 2] } }],
    ['a ragged step', { x: [[[1, 2], [3]]], y: [[1]] }],
    ['a ragged sample', { x: [[[1], [2]], [[3]]], y: [[1], [2]] }],
    ['an empty x', { x: [], y: [[1]] }],
    ['an empty sample', { x: [[]], y: [[1]] }],
    ['y of the wrong N', { x: [[[1], [2]]], y: [[1], [2]] }],
    ['per-step y of the wrong T', { x: seq(1, 2, 1), y: seq(1, 3, 1) }],
    ['y of mixed depths', { x: seq(2, 1, 1), y: [[1], [[2]]] }],
    ['y of mixed depths the other way', { x: seq(2, 1, 1), y: [[[1]], [2]] }],
    ['too many samples', { x: seq(101, 1, 1), y: Array.from({ length: 101 }, () => [1]) }],
    ['too long sequences', { x: seq(1, 51, 1), y: [[1]] }],
    ['an array at the top', []],
    ['a number past float32 in x', { x: [[[1e39]]], y: [[1]] }],
    ['a number past float32 in y', { x: [[[1]]], y: [[-3.5e38]] }],
  ];
  test.each(invalid)('%s: the first issue of the in-memory validation', async (_name, body) => {
    const text = JSON.stringify(body);
    const expected = validate(contract.DatasetInput, JSON.parse(text));
    expect(expected.ok).toBe(false);
    for (const size of [1, 5, 1 << 20]) {
      const { r } = await run(parseJsonUpload, text, size);
      expect(r.ok).toBe(false);
      if (!r.ok && !expected.ok) expect(r.issues[0]).toEqual(expected.issues[0]);
    }
  });

  test.each([
    ['{"x": [[[1,]]]}', /unexpected "]"/],
    ['{"x": [[[01]]]}', /bad number "01"/],
    ['{"x": [[[0x10]]]}', /unexpected "x"/],
    ['{"x": [[[1]]] "y": 2}', /unexpected "\\""/],
    ['{"x": [[[NaN]]]}', /unexpected "N"/],
    ['{"x": [[[1]]]', /unexpected end of the body/],
    ['{"x": [[[1]]], "y": [[1]]} {}', /unexpected "{"/],
    ['{"x": "a\u0001"}', /control character/],
  ])('%s is not JSON', async (text, message) => {
    await expect(run(parseJsonUpload, text, 2)).rejects.toThrow(JsonSyntaxError);
    await expect(run(parseJsonUpload, text, 2)).rejects.toThrow(message);
  });

  test('an aborted upload leaves no file behind', async () => {
    const before = await readdir(dir);
    await run(parseJsonUpload, JSON.stringify({ y: seq(3, 2, 2), x: [[[1]], [['a']]] }), 4);
    expect(await readdir(dir)).toEqual(before);
  });
});

describe('CSV upload', () => {
  const csv = (text: string, size = 5) => run(parseCsvUpload, text, size);

  test('per-step targets, header columns in any order', async () => {
    const { r, stored } = await csv('sample,step,y0,x1,x0\n1,0,0.5,2,1\n1,1,0.6,4,3\n');
    expect(r).toEqual({
      ok: true,
      value: { samples: 1, seqLen: 2, inputSize: 2, targetShape: [1, 2, 1], hasLengths: false },
    });
    expect(stored).toEqual({
      x: [
        [
          [1, 2],
          [3, 4],
        ],
      ],
      y: [[[0.5], [0.6]]],
    });
  });

  test('one target per sequence, ragged lengths padded, interleaved rows, CRLF', async () => {
    const { stored } = await csv('sample,step,x0,y0,y1\r\na,0,1,,\r\nb,0,3,9,10\r\na,1,-2.5e-1,7,8\r\n');
    expect(stored).toEqual({
      x: [
        [[1], [-0.25]],
        [[3], [0]],
      ],
      y: [
        [7, 8],
        [9, 10],
      ],
      lengths: [2, 1],
    });
  });

  test('many interleaved samples written in order across passes, at any chunk size', async () => {
    const N = 40;
    const T = 30;
    const lines = ['sample,step,x0,x1,y0'];
    for (let t = 0; t < T; t++)
      for (let s = 0; s < N; s++) if (t < T - (s % 3)) lines.push(`s${s},${t},${s},${t},${s + t}`);
    for (const size of [3, 1000, 1 << 20]) {
      const { r, stored } = await csv(lines.join('\n'), size);
      expect(r).toMatchObject({ ok: true, value: { samples: N, seqLen: T, targetShape: [N, T, 1], hasLengths: true } });
      expect(stored.lengths).toEqual(Array.from({ length: N }, (_, s) => T - (s % 3)));
      expect(stored.x[5][10]).toEqual([5, 10]);
      expect(stored.x[5][29]).toEqual([0, 0]);
      expect(stored.y[7][3]).toEqual([10]);
    }
  });

  test.each([
    ['', 'line 1', 'empty upload'],
    ['sample,step,x0\n', 'line 1', 'no y columns'],
    ['sample,step,x0,x2,y0\n', 'line 1.x1', 'missing column'],
    ['sample,step,x0,y0,z\n', 'line 1.z', 'unknown column'],
    ['sample,step,x0,y0,x0\na,0,1,2,3\n', 'line 1.x0', 'duplicate column'],
    ['sample,step,x0,y0\n', 'line 2', 'no data rows'],
    ['sample,step,x0,y0\na,1,1,1\n', 'line 2.step', 'steps of a sample'],
    ['sample,step,x0,y0\na,00x,1,1\n', 'line 2.step', 'steps of a sample'],
    ['sample,step,x0,y0\na,0,1\n', 'line 2', 'wrong number of cells'],
    ['sample,step,x0,y0\na,0,1,\na,1,2,\n', 'line 3.y0', "missing target on a sample's last row"],
    ['sample,step,x0,y0\na,0,1,5\na,1,2,\n', 'line 2.y0', 'targets on every row'],
    ['sample,step,x0,y0\na,0,NaN,1\n', 'line 2.x0', 'not a plain decimal number'],
    ['sample,step,x0,y0\na,0,0x10,1\n', 'line 2.x0', 'not a plain decimal number'],
    ['sample,step,x0,y0\na,0, 1,1\n', 'line 2.x0', 'not a plain decimal number'],
    ['sample,step,x0,y0\na,0,+1,1\n', 'line 2.x0', 'not a plain decimal number'],
    ['sample,step,x0,y0\na,0,1,Infinity\n', 'line 2.y0', 'not a plain decimal number'],
    ['sample,step,x0,y0\na,0,1e39,1\n', 'line 2.x0', 'out of float32 range'],
    ['sample,step,x0,y0\na,0,1,1\nb,0,1,1\nc,0,1,1\n', 'line 4.sample', 'too many samples'],
    ['sample,step,x0,y0\na,0,1,1\na,1,1,1\na,2,1,1\na,3,1,1\n', 'line 5.step', 'sequence too long'],
  ])('%j -> %s', async (text, path, message) => {
    const small = makeContract({ ...DEFAULT_LIMITS, maxSamples: 2, maxSeqLen: 3 });
    const { r } = await run(parseCsvUpload, text, 4, small);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.issues[0]).toMatchObject({
        path: expect.stringContaining(path),
        message: expect.stringContaining(message),
      });
  });
});
