/**
 * A 32-bit FNV-1a hash of the UTF-8 encoding of `text`, followed by murmur3's 32-bit
 * finalizer. FNV-1a alone mixes its last bytes poorly, so ids that differ only in a trailing
 * digit ("node-1#7", "node-1#8") would land close together on a ring; the finalizer spreads
 * every input bit over the whole word. Not cryptographic: a client choosing keys can aim
 * them at one endpoint, which for key affinity is acceptable.
 *
 * The UTF-8 bytes are produced on the fly (the same bytes `utf8Encode` gives: lone
 * surrogates become U+FFFD), so hashing allocates nothing. Returns an unsigned 32-bit integer.
 */
export function hashString32(text: string): number {
  let hash = 0x811c9dc5;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      hash = Math.imul(hash ^ code, 0x01000193);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = i + 1 < length ? text.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else code = 0xfffd;
    }
    if (code < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (code >> 6)), 0x01000193);
    } else if (code < 0x10000) {
      hash = Math.imul(hash ^ (0xe0 | (code >> 12)), 0x01000193);
      hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), 0x01000193);
    } else {
      hash = Math.imul(hash ^ (0xf0 | (code >> 18)), 0x01000193);
      hash = Math.imul(hash ^ (0x80 | ((code >> 12) & 0x3f)), 0x01000193);
      hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), 0x01000193);
    }
    hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193);
  }
  return finalize32(hash);
}

/** The same hash over bytes already encoded; `hashBytes32(utf8Encode(s)) === hashString32(s)`. */
export function hashBytes32(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ (bytes[i] as number), 0x01000193);
  return finalize32(hash);
}

/** murmur3's fmix32: every input bit affects every output bit with probability about 1/2. */
function finalize32(value: number): number {
  let hash = value;
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}
