// An incremental Server-Sent Events parser (the WHATWG HTML standard's "event stream"
// interpretation), for `GET /v1/watch`: bytes in as they arrive, whole events out. Lines
// end with LF, CRLF or CR (a CR at the end of a chunk may be followed by the LF in the next);
// a blank line dispatches the event; lines starting with ":" are comments; a field name
// without a colon has an empty value; one space after the colon is dropped. A line or an
// event longer than `eventBytesMax` is refused, so a broken or hostile server cannot make
// the client hold an unbounded buffer.
import { SynodError } from "../core/common/errors.js";

/** One dispatched event: its type ("message" when none was given), its own id if it had one, and its data lines joined by LF. */
export interface SseEvent {
  readonly event: string;
  readonly id: string | null;
  readonly data: string;
}

/** The stream sent an event (or a line) over the parser's bound. */
export class SseTooLargeError extends SynodError {
  constructor(bytesMax: number) {
    super("response_too_large", `an event of the stream is over ${bytesMax} bytes`);
    this.name = "SseTooLargeError";
  }
}

const LF = 0x0a;
const CR = 0x0d;

export class SseParser {
  /** The bytes of the line under way (pieces of the chunks it spans). */
  private line: Uint8Array[] = [];
  private lineBytes = 0;
  /** The event under way. */
  private eventType = "";
  private id: string | null = null;
  private data: string[] = [];
  private eventBytes = 0;
  /** The last chunk ended with CR: an LF that starts the next one ends nothing more. */
  private afterCr = false;
  private readonly decoder = new TextDecoder("utf-8");

  constructor(private readonly eventBytesMax: number) {}

  /** Feeds a chunk; returns the events it completed, in order. Throws SseTooLargeError past the bound. */
  push(chunk: Uint8Array): SseEvent[] {
    const events: SseEvent[] = [];
    // An empty chunk must not forget a CR that ended the one before.
    if (chunk.length === 0) return events;
    let start = 0;
    if (this.afterCr && chunk[0] === LF) start = 1;
    this.afterCr = false;
    for (let i = start; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte !== LF && byte !== CR) continue;
      this.append(chunk.subarray(start, i));
      this.endLine(events);
      if (byte === CR) {
        if (i + 1 < chunk.length) {
          if (chunk[i + 1] === LF) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
    }
    this.append(chunk.subarray(start));
    return events;
  }

  private append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.lineBytes += bytes.length;
    if (this.lineBytes + this.eventBytes > this.eventBytesMax) throw new SseTooLargeError(this.eventBytesMax);
    // A copy: the caller may reuse its chunk's buffer.
    this.line.push(bytes.slice());
  }

  private endLine(events: SseEvent[]): void {
    const bytes = this.line.length === 1 ? (this.line[0] as Uint8Array) : concat(this.line, this.lineBytes);
    this.eventBytes += this.lineBytes;
    this.line = [];
    this.lineBytes = 0;
    if (bytes.length === 0) return this.dispatch(events);
    const text = this.decoder.decode(bytes);
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.eventType = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }

  private dispatch(events: SseEvent[]): void {
    if (this.data.length > 0) events.push({ event: this.eventType === "" ? "message" : this.eventType, id: this.id, data: this.data.join("\n") });
    this.eventType = "";
    this.id = null;
    this.data = [];
    this.eventBytes = 0;
  }
}

function concat(pieces: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
