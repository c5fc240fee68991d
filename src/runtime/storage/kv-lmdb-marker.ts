/**
 * The LMDB backend's marker file, beside its database: the marker's state ("dirty" while the
 * database is open, "clean" once it was flushed and closed) and the kernel's boot id, read,
 * written and judged here. What it is for, and why a database it does not vouch for is
 * rebuilt rather than read, is kv-lmdb.ts's module comment ("Durability").
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic-file.js";

const MARKER_FILE = "synod-kv-marker.json";
const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";
/** What `readBootId` answers where the kernel has no boot id: a dirty marker is then never trusted. */
export const UNKNOWN_BOOT_ID = "unknown";

export interface Marker {
  readonly state: "dirty" | "clean";
  readonly bootId: string;
}

/** The kernel's boot id (Linux), or UNKNOWN_BOOT_ID where there is none. */
export function readBootId(): string {
  try {
    const id = readFileSync(BOOT_ID_FILE, "utf8").trim();
    return id.length > 0 ? id : UNKNOWN_BOOT_ID;
  } catch {
    return UNKNOWN_BOOT_ID;
  }
}

/** Why the database on disk is not to be trusted, or null if it is. */
export function distrust(marker: Marker | "absent" | "unreadable", databaseExists: boolean, bootId: string): string | null {
  if (marker === "absent") return databaseExists ? "the database has no marker file, so whether it was closed cleanly is unknown" : null;
  if (marker === "unreadable") return "its marker file is unreadable";
  if (marker.state === "clean") return null;
  if (bootId === UNKNOWN_BOOT_ID || marker.bootId === UNKNOWN_BOOT_ID) return "it was not closed cleanly and this system has no boot id to tell a process crash from a machine crash";
  if (marker.bootId !== bootId) return `it was open when the machine restarted (boot ${marker.bootId}, now ${bootId}), and unsynced LMDB pages may be lost`;
  return null;
}

export function readMarker(path: string): Marker | "absent" | "unreadable" {
  let text: string;
  try {
    text = readFileSync(join(path, MARKER_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    return "unreadable";
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null) return "unreadable";
    const { state, bootId } = parsed as Record<string, unknown>;
    if ((state !== "dirty" && state !== "clean") || typeof bootId !== "string") return "unreadable";
    return { state, bootId };
  } catch {
    return "unreadable";
  }
}

export function writeMarker(path: string, marker: Marker): void {
  writeFileAtomic(join(path, MARKER_FILE), Buffer.from(JSON.stringify(marker) + "\n"));
}

/** Removes the marker, with the database it was about. */
export function removeMarker(path: string): void {
  rmSync(join(path, MARKER_FILE), { force: true });
}
