/**
 * Writing a file so that a crash leaves either the old version or the new one, never a
 * mixture: write a temporary file beside it, fsync it, rename it over the target, fsync the
 * directory (so the rename itself is durable). Snapshots are saved this way; WAL segments
 * behind a snapshot may be removed only after this returns.
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, rename } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const TEMP_SUFFIX = ".tmp";

/** Writes `data` (one buffer, or pieces written one after another, e.g. a header and a body) to `path` atomically. */
export function writeFileAtomic(path: string, data: Uint8Array | readonly Uint8Array[]): void {
  const temp = `${path}${TEMP_SUFFIX}`;
  const pieces = data instanceof Uint8Array ? [data] : data;
  const fd = openSync(temp, "w");
  try {
    for (const piece of pieces) {
      let written = 0;
      while (written < piece.length) written += writeSync(fd, piece, written, piece.length - written);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  syncDirectory(dirname(path));
}

/** Makes a directory's entries (files created, renamed or removed in it) durable. */
export function syncDirectory(path: string): void {
  const dir = openSync(path, "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/**
 * `writeFileAtomic` with the writes and fsyncs on libuv's thread pool, for a large file (a
 * snapshot) that must not stall the event loop. Done when the promise resolves.
 */
export async function writeFileAtomicAsync(path: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
  const temp = `${path}${TEMP_SUFFIX}`;
  const pieces = data instanceof Uint8Array ? [data] : data;
  const file = await open(temp, "w");
  try {
    for (const piece of pieces) {
      let written = 0;
      while (written < piece.length) written += (await file.write(piece, written, piece.length - written)).bytesWritten;
    }
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Removes temporary files a crash left behind in `dir` (they were never renamed into place). */
export function removeLeftoverTempFiles(dir: string): string[] {
  const removed = readdirSync(dir).filter((name) => name.endsWith(TEMP_SUFFIX));
  for (const name of removed) rmSync(join(dir, name), { force: true });
  return removed.map((name) => basename(name));
}
