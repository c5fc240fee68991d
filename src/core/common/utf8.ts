import { assert } from "./assert.js";

/**
 * UTF-8 encoding by hand: core/ has no TextEncoder (it is a host API, not ECMAScript), and
 * the state machine's command format must be byte-exact on every platform.
 */
export function utf8Length(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) length += 1;
    else if (code < 0x800) length += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      length += 4;
      i++;
    } else length += 3;
  }
  return length;
}

/** Writes `text` into `out` at `offset`; returns the offset after it. Lone surrogates become U+FFFD. */
export function utf8Write(text: string, out: Uint8Array, offset: number): number {
  let at = offset;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && isLowSurrogate(next)) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else code = 0xfffd;
    }
    if (code < 0x80) out[at++] = code;
    else if (code < 0x800) {
      out[at++] = 0xc0 | (code >> 6);
      out[at++] = 0x80 | (code & 0x3f);
    } else if (code < 0x10000) {
      out[at++] = 0xe0 | (code >> 12);
      out[at++] = 0x80 | ((code >> 6) & 0x3f);
      out[at++] = 0x80 | (code & 0x3f);
    } else {
      out[at++] = 0xf0 | (code >> 18);
      out[at++] = 0x80 | ((code >> 12) & 0x3f);
      out[at++] = 0x80 | ((code >> 6) & 0x3f);
      out[at++] = 0x80 | (code & 0x3f);
    }
  }
  return at;
}

export function utf8Encode(text: string): Uint8Array {
  const out = new Uint8Array(utf8Length(text));
  const end = utf8Write(text, out, 0);
  assert(end === out.length, "utf8 length mismatch");
  return out;
}

/** Decodes UTF-8; malformed sequences become U+FFFD rather than throwing. */
export function utf8Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let result = "";
  const codes: number[] = [];
  let i = start;
  while (i < end) {
    const b0 = bytes[i] as number;
    let code = 0xfffd;
    let size = 1;
    if (b0 < 0x80) code = b0;
    else if (b0 >= 0xc2 && b0 < 0xe0 && i + 1 < end && isContinuation(bytes[i + 1])) {
      code = ((b0 & 0x1f) << 6) | ((bytes[i + 1] as number) & 0x3f);
      size = 2;
    } else if (b0 >= 0xe0 && b0 < 0xf0 && i + 2 < end && isContinuation(bytes[i + 1]) && isContinuation(bytes[i + 2])) {
      const c = ((b0 & 0x0f) << 12) | (((bytes[i + 1] as number) & 0x3f) << 6) | ((bytes[i + 2] as number) & 0x3f);
      if (c >= 0x800 && (c < 0xd800 || c > 0xdfff)) {
        code = c;
        size = 3;
      }
    } else if (b0 >= 0xf0 && b0 < 0xf5 && i + 3 < end && isContinuation(bytes[i + 1]) && isContinuation(bytes[i + 2]) && isContinuation(bytes[i + 3])) {
      const c =
        ((b0 & 0x07) << 18) |
        (((bytes[i + 1] as number) & 0x3f) << 12) |
        (((bytes[i + 2] as number) & 0x3f) << 6) |
        ((bytes[i + 3] as number) & 0x3f);
      if (c >= 0x10000 && c <= 0x10ffff) {
        code = c;
        size = 4;
      }
    }
    codes.push(code);
    i += size;
    if (codes.length >= 4096) {
      result += String.fromCodePoint(...codes);
      codes.length = 0;
    }
  }
  return result + String.fromCodePoint(...codes);
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function isContinuation(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}
