/**
 * A push tokenizer for JSON text that arrives in chunks. It checks the syntax and hands each token
 * to a handler as it completes, holding nothing but the token in progress and the nesting stack, so
 * the memory of a parse does not grow with the body. Strings and numbers are capped in length
 * (`maxToken`), which bounds the token in progress.
 *
 * Written here rather than taken from npm (stream-json and the like): the dataset body has a fixed
 * shape, the checks run per number anyway, and a token object per number would cost more than the
 * parse itself.
 */

export interface JsonTokenHandler {
  openObject(): void;
  closeObject(): void;
  openArray(): void;
  closeArray(): void;
  key(name: string): void;
  value(v: string | number | boolean | null): void;
}

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
    this.name = 'JsonSyntaxError';
  }
}

const enum Expect {
  Value,
  ValueOrClose,
  Comma,
  Key,
  KeyOrClose,
  Colon,
  End,
}

const enum Tok {
  None,
  String,
  Number,
  Literal,
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
/** Characters a number token runs over (checked against `NUMBER` once it ends). */
const isNumberChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
const LITERALS: Record<string, boolean | null> = { true: true, false: false, null: null };

export class JsonTokenizer {
  private expect = Expect.Value;
  /** Open containers: true for an object. */
  private readonly stack: boolean[] = [];
  private tok = Tok.None;
  private text = '';
  private isKey = false;
  /** Inside a string: the last character was an unpaired backslash. */
  private escaped = false;
  private pos = 0;

  constructor(
    private readonly h: JsonTokenHandler,
    private readonly maxToken = 65_536,
  ) {}

  get depth(): number {
    return this.stack.length;
  }

  write(chunk: string): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.tok === Tok.String) {
        i = this.continueString(chunk, i);
        continue;
      }
      if (this.tok !== Tok.None) {
        i = this.continueWord(chunk, i);
        continue;
      }
      const c = chunk.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        i++;
        continue;
      }
      if (
        (c === 0x2d || (c >= 0x30 && c <= 0x39)) &&
        (this.expect === Expect.Value || this.expect === Expect.ValueOrClose)
      ) {
        i = this.startNumber(chunk, i);
        continue;
      }
      this.pos += 1;
      i++;
      this.punct(c);
    }
  }

  /** A number, the hot path: read in one slice when it ends inside the chunk. */
  private startNumber(chunk: string, from: number): number {
    let i = from + 1;
    const n = chunk.length;
    while (i < n && isNumberChar(chunk.charCodeAt(i))) i++;
    this.tok = Tok.Number;
    this.text = chunk.slice(from, i);
    this.pos += i - from;
    if (i < n) this.finishWord();
    return i;
  }

  /** The body ended: throws unless it was one complete value. */
  end(): void {
    if (this.tok === Tok.Number || this.tok === Tok.Literal) this.finishWord();
    if (this.tok === Tok.String || this.expect !== Expect.End)
      throw new JsonSyntaxError('unexpected end of the body', this.pos);
  }

  private punct(c: number): void {
    const e = this.expect;
    if (c === 0x22 /* " */) {
      if (e === Expect.Key || e === Expect.KeyOrClose) this.isKey = true;
      else if (e === Expect.Value || e === Expect.ValueOrClose) this.isKey = false;
      else return this.fail(c);
      this.tok = Tok.String;
      this.text = '';
      this.escaped = false;
      return;
    }
    if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      const obj = c === 0x7d;
      const top = this.stack[this.stack.length - 1];
      if (top !== obj || !(e === Expect.Comma || (obj ? e === Expect.KeyOrClose : e === Expect.ValueOrClose)))
        return this.fail(c);
      this.stack.pop();
      if (obj) this.h.closeObject();
      else this.h.closeArray();
      this.afterValue();
      return;
    }
    if (c === 0x2c /* , */) {
      if (e !== Expect.Comma) return this.fail(c);
      this.expect = this.stack[this.stack.length - 1] ? Expect.Key : Expect.Value;
      return;
    }
    if (c === 0x3a /* : */) {
      if (e !== Expect.Colon) return this.fail(c);
      this.expect = Expect.Value;
      return;
    }
    if (e !== Expect.Value && e !== Expect.ValueOrClose) return this.fail(c);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const obj = c === 0x7b;
      this.stack.push(obj);
      this.expect = obj ? Expect.KeyOrClose : Expect.ValueOrClose;
      if (obj) this.h.openObject();
      else this.h.openArray();
      return;
    }
    if (c >= 0x61 && c <= 0x7a) this.tok = Tok.Literal;
    else return this.fail(c);
    this.text = String.fromCharCode(c);
  }

  private continueString(chunk: string, from: number): number {
    let i = from;
    const n = chunk.length;
    while (i < n) {
      const c = chunk.charCodeAt(i);
      if (this.escaped) this.escaped = false;
      else if (c === 0x5c) this.escaped = true;
      else if (c === 0x22) break;
      else if (c < 0x20) throw new JsonSyntaxError('a control character in a string', this.pos + (i - from));
      i++;
    }
    this.text += chunk.slice(from, i);
    this.pos += i - from;
    if (this.text.length > this.maxToken)
      throw new JsonSyntaxError(`a string longer than ${this.maxToken} characters`, this.pos);
    if (i === n) return i;
    this.pos += 1;
    let s: string;
    try {
      s = JSON.parse(`"${this.text}"`) as string;
    } catch {
      throw new JsonSyntaxError('a bad escape in a string', this.pos);
    }
    this.tok = Tok.None;
    this.text = '';
    if (this.isKey) {
      this.h.key(s);
      this.expect = Expect.Colon;
    } else {
      this.h.value(s);
      this.afterValue();
    }
    return i + 1;
  }

  private continueWord(chunk: string, from: number): number {
    let i = from;
    const n = chunk.length;
    const isNum = this.tok === Tok.Number;
    while (i < n) {
      const c = chunk.charCodeAt(i);
      if (!(isNum ? isNumberChar(c) : c >= 0x61 && c <= 0x7a)) break;
      i++;
    }
    this.text += chunk.slice(from, i);
    this.pos += i - from;
    if (this.text.length > 400) throw new JsonSyntaxError('a number or literal over 400 characters', this.pos);
    if (i < n) this.finishWord();
    return i;
  }

  private finishWord(): void {
    const t = this.text;
    let v: number | boolean | null;
    if (this.tok === Tok.Number) {
      if (!NUMBER.test(t)) throw new JsonSyntaxError(`bad number ${JSON.stringify(t.slice(0, 40))}`, this.pos);
      v = Number(t);
    } else {
      if (!(t in LITERALS)) throw new JsonSyntaxError(`unexpected ${JSON.stringify(t.slice(0, 40))}`, this.pos);
      v = LITERALS[t];
    }
    this.tok = Tok.None;
    this.text = '';
    this.h.value(v);
    this.afterValue();
  }

  private afterValue(): void {
    this.expect = this.stack.length === 0 ? Expect.End : Expect.Comma;
  }

  private fail(c: number): never {
    throw new JsonSyntaxError(`unexpected ${JSON.stringify(String.fromCharCode(c))}`, this.pos);
  }
}
