// What the transport's tests share.
import type { TransportLogger } from "./peer-transport.js";

export interface LogLine {
  readonly level: "info" | "warn" | "error" | "debug";
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** A transport logger that keeps every line, for tests to look for what was logged. */
export class RecordingLog implements TransportLogger {
  readonly lines: LogLine[] = [];
  info(fields: object, message: string): void {
    this.lines.push({ level: "info", fields: fields as Record<string, unknown>, message });
  }
  warn(fields: object, message: string): void {
    this.lines.push({ level: "warn", fields: fields as Record<string, unknown>, message });
  }
  error(fields: object, message: string): void {
    this.lines.push({ level: "error", fields: fields as Record<string, unknown>, message });
  }
  debug(fields: object, message: string): void {
    this.lines.push({ level: "debug", fields: fields as Record<string, unknown>, message });
  }
  find(level: LogLine["level"], text: string): LogLine[] {
    return this.lines.filter((line) => line.level === level && line.message.includes(text));
  }
  /** Whether any line's message or fields mention `text`. */
  has(text: string): boolean {
    return this.lines.some((line) => `${line.message} ${JSON.stringify(line.fields)}`.includes(text));
  }
}
