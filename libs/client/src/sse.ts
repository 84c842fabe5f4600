/**
 * A Server-Sent Events parser, after the WHATWG "event stream interpretation" rules, for the bytes of
 * a fetch body. Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of
 * the next are one line end); a blank line dispatches the message; `:` starts a comment; a field's
 * value loses one leading space; `data` lines are joined with '\n'; an `id` containing NUL is
 * ignored; `retry` takes only digits. An unterminated message at the end of the stream is dropped,
 * as a browser's EventSource drops it.
 */

export interface SseMessage {
  /** The `event` field; `'message'` when the message had none. */
  event: string;
  data: string;
  /** The last event id seen so far on this stream (it carries over messages without `id`), or ''. */
  id: string;
}

export class SseParser {
  private buffer = '';
  /** The previous chunk ended with CR: a leading LF of the next chunk belongs to that line end. */
  private pendingCr = false;
  private data: string[] = [];
  private event = '';
  /** Last event id of the stream, like EventSource's `lastEventId`. */
  lastEventId = '';
  /** The last `retry` the server sent (milliseconds before reconnecting), if any. */
  retry: number | undefined;

  /** Feeds decoded text; returns the messages completed by it. */
  push(text: string): SseMessage[] {
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const out: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 === this.buffer.length) this.pendingCr = true;
        else if (this.buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        return null; // unknown fields are ignored
    }
    return null;
  }

  /** A blank line: a message with at least one `data` line is dispatched; the buffers reset. */
  private dispatch(): SseMessage | null {
    const data = this.data;
    const event = this.event || 'message';
    this.data = [];
    this.event = '';
    return data.length === 0 ? null : { event, data: data.join('\n'), id: this.lastEventId };
  }
}

/** Messages of an SSE byte stream (e.g. `response.body` of fetch), in order. */
export async function* parseSse(
  body: AsyncIterable<Uint8Array>,
  parser = new SseParser(),
): AsyncGenerator<SseMessage, void, undefined> {
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of body) {
    yield* parser.push(decoder.decode(chunk, { stream: true }));
  }
  const rest = decoder.decode();
  if (rest) yield* parser.push(rest);
}
