import { parseSse, SseParser } from '@relu-lstm/client';

// eslint-disable-next-line @typescript-eslint/require-await -- an async source, as a response body is
async function* chunks(...parts: Array<string | Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

async function all(...parts: Array<string | Uint8Array>) {
  const out = [];
  for await (const m of parseSse(chunks(...parts))) out.push(m);
  return out;
}

describe('SseParser', () => {
  test('id, event and data fields; data lines joined with newlines; one leading space dropped', async () => {
    expect(await all('id: 1-0\nevent: metric\ndata: {"a":1}\n\n', 'data:  two spaces\ndata:x\n\n')).toEqual([
      { id: '1-0', event: 'metric', data: '{"a":1}' },
      { id: '1-0', event: 'message', data: ' two spaces\nx' }, // the id carries over; no event -> 'message'
    ]);
  });

  test('CRLF, CR and LF line ends, also split between chunks (CR | LF across a boundary is one line end)', async () => {
    expect(await all('data: a\r', '\n\r', '\ndata: b\rdata: c\r\r', 'data: d\n', '\n')).toEqual([
      { id: '', event: 'message', data: 'a' },
      { id: '', event: 'message', data: 'b\nc' },
      { id: '', event: 'message', data: 'd' },
    ]);
  });

  test('a message split anywhere, even inside a multi-byte UTF-8 character', async () => {
    const bytes = new TextEncoder().encode('id: 7\ndata: {"m":"λ→✓"}\n\n');
    const parts = Array.from(bytes, (b) => new Uint8Array([b])); // one byte per chunk
    expect(await all(...parts)).toEqual([{ id: '7', event: 'message', data: '{"m":"λ→✓"}' }]);
  });

  test('comments and unknown fields are ignored; blocks without data are not dispatched', async () => {
    expect(await all(': keep-alive\n\n', 'foo: bar\n\n', 'id: 3\n\n', 'event: x\n\n', 'data\n\n')).toEqual([
      { id: '3', event: 'message', data: '' }, // "data" alone is a data field with an empty value
    ]);
  });

  test('retry takes digits only; an id with NUL is ignored; the last unterminated message is dropped', async () => {
    const p = new SseParser();
    const out = [];
    for await (const m of parseSse(chunks('retry: 250\nid: 5\n\nretry: 1.5\nid: a\0b\ndata: x\n\ndata: lost'), p))
      out.push(m);
    expect(p.retry).toBe(250);
    expect(out).toEqual([{ id: '5', event: 'message', data: 'x' }]);
  });

  test('a field without a colon, and an empty id resets the last event id', () => {
    const p = new SseParser();
    expect(p.push('id: 9\ndata: a\n\n')).toEqual([{ id: '9', event: 'message', data: 'a' }]);
    expect(p.push('id\ndata: b\n\n')).toEqual([{ id: '', event: 'message', data: 'b' }]);
  });
});
