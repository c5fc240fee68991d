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

/**
 * Decodes UTF-8 by the WHATWG Encoding Standard's decoder, so the result matches every
 * platform's TextDecoder: each maximal ill-formed subsequence becomes one U+FFFD.
 */
export function utf8Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let result = "";
  const codes: number[] = [];
  const emit = (code: number): void => {
    codes.push(code);
    if (codes.length >= 4096) {
      result += String.fromCodePoint(...codes);
      codes.length = 0;
    }
  };
  let codePoint = 0;
  let needed = 0;
  let seen = 0;
  let lower = 0x80;
  let upper = 0xbf;
  for (let i = start; i < end; i++) {
    const byte = bytes[i] as number;
    if (needed === 0) {
      if (byte <= 0x7f) emit(byte);
      else if (byte >= 0xc2 && byte <= 0xdf) {
        needed = 1;
        codePoint = byte & 0x1f;
      } else if (byte >= 0xe0 && byte <= 0xef) {
        if (byte === 0xe0) lower = 0xa0;
        if (byte === 0xed) upper = 0x9f;
        needed = 2;
        codePoint = byte & 0x0f;
      } else if (byte >= 0xf0 && byte <= 0xf4) {
        if (byte === 0xf0) lower = 0x90;
        if (byte === 0xf4) upper = 0x8f;
        needed = 3;
        codePoint = byte & 0x07;
      } else emit(0xfffd);
      continue;
    }
    if (byte < lower || byte > upper) {
      // The sequence so far is one ill-formed subpart; this byte starts afresh.
      codePoint = needed = seen = 0;
      lower = 0x80;
      upper = 0xbf;
      emit(0xfffd);
      i--;
      continue;
    }
    lower = 0x80;
    upper = 0xbf;
    codePoint = (codePoint << 6) | (byte & 0x3f);
    if (++seen === needed) {
      emit(codePoint);
      codePoint = needed = seen = 0;
    }
  }
  if (needed !== 0) emit(0xfffd);
  return result + String.fromCodePoint(...codes);
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * `text` with every lone surrogate replaced by U+FFFD: the string whose UTF-8 encoding is
 * the same bytes `utf8Encode(text)` gives. Keys are compared and stored as UTF-8, so two JS
 * strings with the same encoding must name the same key. Returns `text` itself (no copy)
 * when it is already well formed, which is the common case.
 */
export function toWellFormed(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0xd800 || code > 0xdfff) continue;
    if (code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      i++;
      continue;
    }
    return utf8Decode(utf8Encode(text));
  }
  return text;
}

/**
 * Orders strings as their UTF-8 encodings compare byte by byte (which is code point order),
 * without encoding them. JS's own `<` compares UTF-16 code units, which differs for
 * characters above U+FFFF (surrogates, 0xD800-0xDFFF) against U+E000-U+FFFF. Both strings
 * must be well formed (see `toWellFormed`). Returns a negative number, 0 or a positive one.
 */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) - codePointRank(y);
    return x - y;
  }
  return a.length - b.length;
}

/** Among code units >= 0xD800: surrogates (astral code points) rank above U+E000-U+FFFF. */
function codePointRank(unit: number): number {
  return unit <= 0xdfff ? unit + 0x2000 : unit - 0x800;
}
