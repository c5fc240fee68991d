/**
 * Fuzzes the WAL and snapshot readers through the real log: each input is a history
 * (appends, overwrites, hard states, the node's own compactions, an installed snapshot) of
 * two groups sharing one WAL, written with the real `SharedLog` into a fresh directory with
 * small segments (so sweeps and segment removal happen), and then damage to its files
 * (truncation, bit flips, a zeroed range) before `SharedLog.open` reads it back.
 *
 * Allowed outcomes:
 * - the log opens, and what it recovered, for both groups, is exactly the state after some
 *   prefix of the records that were written, keeping every record of every segment but the last (only
 *   the last segment's tail may be torn and cut), with each snapshot's data as written;
 * - or it refuses with WalCorruptionError naming the file and the byte offset, or
 *   SnapshotFileError naming the file.
 * Anything else — another exception, or a recovered state that no prefix had (a record
 * that was never written) — is a finding.
 *
 * A segment that is not the last, cut short exactly at a record boundary, used to read as
 * complete (its records lost without a word); this fuzzer found it, and segment headers
 * (wal.ts) fixed it, so such a state is a finding like any other.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deepStrictEqual } from "node:assert/strict";
import fc from "fast-check";
import type { LogEntry, Snapshot } from "../core/engine/contract.js";
import { replayLogRecords } from "../runtime/storage/log-state.js";
import { SharedLog, snapshotDirOf } from "../runtime/storage/shared-log.js";
import type { GroupId } from "../core/multi/group.js";
import { SnapshotFileError } from "../runtime/storage/snapshot-file.js";
import { Wal, WAL_SEGMENT_HEADER_BYTES, WalCorruptionError, type WalRecordPosition } from "../runtime/storage/wal.js";
import { FuzzFinding, runFuzzAsync, typedName, type FuzzReport, type FuzzRun, type Outcomes } from "./harness.js";

const SEGMENT_BYTES = 160;

/** The groups a history writes to: group 0 and one other (its files in a directory of their own). */
const GROUPS: readonly GroupId[] = [0, 5];

type Step = { readonly group: number } & (
  | { readonly kind: "append"; readonly back: number; readonly sizes: readonly number[]; readonly term: number; readonly hardState: Uint8Array | null }
  | { readonly kind: "compact"; readonly at: number; readonly data: Uint8Array }
  | { readonly kind: "install"; readonly ahead: number; readonly term: number; readonly data: Uint8Array }
);

type Damage =
  | { readonly kind: "truncate"; readonly file: number; readonly at: number }
  | { readonly kind: "flip"; readonly file: number; readonly at: number; readonly bit: number }
  | { readonly kind: "zero"; readonly file: number; readonly at: number; readonly count: number };

interface StorageInput {
  readonly steps: readonly Step[];
  readonly damage: readonly Damage[];
}

const bytes = fc.uint8Array({ minLength: 1, maxLength: 40 });
const group = fc.nat({ max: GROUPS.length - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ group, kind: fc.constant("append" as const), back: fc.nat({ max: 2 }), sizes: fc.array(fc.nat({ max: 48 }), { maxLength: 3 }), term: fc.nat({ max: 3 }), hardState: fc.option(bytes) }) },
  { weight: 1, arbitrary: fc.record({ group, kind: fc.constant("compact" as const), at: fc.nat(), data: bytes }) },
  { weight: 1, arbitrary: fc.record({ group, kind: fc.constant("install" as const), ahead: fc.integer({ min: 1, max: 3 }), term: fc.nat({ max: 3 }), data: bytes }) },
);
const fileChoice = fc.nat({ max: 63 });
const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("truncate" as const), file: fileChoice, at: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("flip" as const), file: fileChoice, at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("zero" as const), file: fileChoice, at: fc.nat(), count: fc.integer({ min: 1, max: 64 }) }) },
);
const storageInput: fc.Arbitrary<StorageInput> = fc.record({ steps: fc.array(step, { minLength: 1, maxLength: 14 }), damage: fc.array(damage, { minLength: 1, maxLength: 2 }) });

/** The hard state is opaque bytes here: the store's format is what is under test. */
const identity = (value: Uint8Array): Uint8Array => value;

/** Writes the history; returns each snapshot's data by group and index, to check what is read back. */
async function writeHistory(dir: string, snapDir: string, steps: readonly Step[]): Promise<Map<string, Uint8Array>> {
  const { log } = SharedLog.open<Uint8Array>({ dir, snapshotDir: snapDir, encodeHardState: identity, decodeHardState: identity, segmentBytes: SEGMENT_BYTES });
  const snapshots = new Map<string, Uint8Array>();
  const terms = new Map<string, number>();
  let fill = 0;
  try {
    for (const s of steps) {
      const g = GROUPS[s.group % GROUPS.length] as GroupId;
      const last = log.lastIndex(g);
      const snapshotIndex = log.snapshotIndex(g);
      if (s.kind === "append") {
        const first = Math.max(snapshotIndex + 1, last + 1 - s.back);
        const entries: LogEntry[] = s.sizes.map((size, i) => ({ index: first + i, term: s.term, data: new Uint8Array(size).fill(++fill % 251) }));
        for (const e of entries) terms.set(`${g}:${e.index}`, e.term);
        log.save(g, { snapshot: null, entries, hardState: s.hardState });
      } else if (s.kind === "compact") {
        if (last <= snapshotIndex) continue;
        const index = snapshotIndex + 1 + (s.at % (last - snapshotIndex));
        snapshots.set(`${g}:${index}`, s.data);
        log.compact(g, { index, term: terms.get(`${g}:${index}`) ?? 0, data: s.data });
      } else {
        const snapshot: Snapshot = { index: last + s.ahead, term: s.term, data: s.data };
        snapshots.set(`${g}:${snapshot.index}`, s.data);
        log.save(g, { snapshot, entries: [], hardState: null });
      }
      log.sync();
    }
  } finally {
    await log.close();
  }
  return snapshots;
}

/** One group's recovered log, in plain values. */
interface RecoveredLog {
  readonly snapshot: { readonly index: number; readonly term: number } | null;
  readonly entries: readonly LogEntry[];
  readonly hardState: Uint8Array | null;
}

/** Every group's, by group (a group with nothing durable is absent). */
type RecoveredState = ReadonlyMap<GroupId, RecoveredLog>;

/**
 * The state after each prefix of the records written; the first `mustKeep` prefixes cut
 * records from a segment that is not the last, which no recovery may do — and the first
 * `mustKeepWithoutLastHeader`, when damage took the last segment's header too: that header
 * is the only record of how long the segment before it was (a crash right after a roll
 * leaves the last segment without one, legitimately), so a cut at a record boundary of that
 * segment cannot be told from a complete one.
 */
async function prefixStates(dir: string): Promise<{ readonly states: (RecoveredState | null)[]; readonly mustKeep: number; readonly mustKeepWithoutLastHeader: number }> {
  const { wal, records, positions, firstSegment } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, deferPreparation: true });
  await wal.close();
  const files = [...new Set(positions.map((p) => p.file))];
  const lastFile = files[files.length - 1];
  const beforeLastFile = files[files.length - 2];
  const mustKeep = positions.filter((p) => p.file !== lastFile).length;
  const mustKeepWithoutLastHeader = positions.filter((p) => p.file !== lastFile && p.file !== beforeLastFile).length;
  const start = { wholeHistory: firstSegment.sequence === 1, firstFile: firstSegment.file };
  const replayed = (kept: readonly number[]): RecoveredState | null => {
    try {
      const groups = replayLogRecords(kept.map((i) => records[i] as Uint8Array), kept.map((i) => positions[i] as WalRecordPosition), start, () => {});
      return new Map(
        [...groups].map(([g, { state }]) => [g, { snapshot: state.snapshot === null ? null : { index: state.snapshot.index, term: state.snapshot.term }, entries: state.entries.map(plainEntry), hardState: state.hardState }]),
      );
    } catch (error) {
      // Records that cannot follow one another, or no complete checkpoint after removed segments: no state.
      if (!(error instanceof WalCorruptionError)) throw error;
      return null;
    }
  };
  const all = records.map((_, i) => i);
  const states = all.map((_, p) => replayed(all.slice(0, p)));
  states.push(replayed(all));
  return { states, mustKeep, mustKeepWithoutLastHeader };
}

function plainEntry(entry: LogEntry): LogEntry {
  return entry.kind === undefined ? { index: entry.index, term: entry.term, data: new Uint8Array(entry.data) } : { index: entry.index, term: entry.term, data: new Uint8Array(entry.data), kind: entry.kind };
}

/** The files damage can hit: WAL segments, then snapshot files, by name. */
function damageable(dir: string, snapDir: string): string[] {
  const wal = readdirSync(dir).filter((name) => name.endsWith(".wal")).sort().map((name) => join(dir, name));
  const snap = GROUPS.flatMap((g) => {
    const groupDir = snapshotDirOf(snapDir, g);
    return existsDir(groupDir) ? readdirSync(groupDir).filter((name) => name.endsWith(".snap")).sort().map((name) => join(groupDir, name)) : [];
  });
  return [...wal, ...snap];
}

/** Damages one file; returns it when the damage reached its first WAL_SEGMENT_HEADER_BYTES (where a segment's header is), else null. */
function applyDamage(files: readonly string[], d: Damage): string | null {
  const file = files[d.file % files.length];
  if (file === undefined) return null;
  const content = readFileSync(file);
  if (content.length === 0) return null;
  const at = d.at % content.length;
  const hitsHeader = at < WAL_SEGMENT_HEADER_BYTES ? file : null;
  if (d.kind === "truncate") {
    truncateSync(file, at);
    return hitsHeader;
  }
  if (d.kind === "flip") content[at] = (content[at] as number) ^ (1 << d.bit);
  else content.fill(0, at, Math.min(content.length, at + d.count));
  writeFileSync(file, content);
  return hitsHeader;
}

function matches(recovered: RecoveredState, allowed: RecoveredState | null): boolean {
  if (allowed === null) return false;
  try {
    deepStrictEqual(recovered, allowed);
    return true;
  } catch {
    return false;
  }
}

async function checkInput(input: StorageInput, outcomes: Outcomes, root: string): Promise<void> {
  const base = mkdtempSync(join(root, "case-"));
  const dir = join(base, "wal");
  const snapDir = join(base, "snap");
  try {
    const written = await writeHistory(dir, snapDir, input.steps);
    const prefixes = await prefixStates(dir);
    const { states } = prefixes;
    const files = damageable(dir, snapDir);
    const lastWal = files.filter((file) => file.endsWith(".wal")).pop();
    let lastHeaderHit = false;
    for (const d of input.damage) lastHeaderHit = applyDamage(files, d) === lastWal || lastHeaderHit;
    const mustKeep = lastHeaderHit ? prefixes.mustKeepWithoutLastHeader : prefixes.mustKeep;
    let opened: ReturnType<typeof SharedLog.open<Uint8Array>>;
    try {
      opened = SharedLog.open<Uint8Array>({ dir, snapshotDir: snapDir, encodeHardState: identity, decodeHardState: identity, segmentBytes: SEGMENT_BYTES });
    } catch (error) {
      const name = typedName(error, [WalCorruptionError, SnapshotFileError]);
      const message = (error as Error).message;
      if (error instanceof WalCorruptionError && !(message.includes(error.file) && message.includes(`at byte ${error.offset}`))) throw new FuzzFinding(`a WAL refusal that does not name the file and offset: ${message}`);
      if (error instanceof SnapshotFileError && !message.includes(error.file)) throw new FuzzFinding(`a snapshot refusal that does not name the file: ${message}`);
      outcomes.count(`refused: ${name}`);
      return;
    }
    const { log, groups } = opened;
    await log.close();
    const recovered: RecoveredState = new Map(
      [...groups].map(([g, { durable }]) => [
        g,
        {
          snapshot: durable.snapshot === null ? null : { index: durable.snapshot.index, term: durable.snapshot.term },
          entries: durable.entries.map(plainEntry),
          hardState: durable.hardState === null ? null : new Uint8Array(durable.hardState),
        },
      ]),
    );
    for (const [g, { durable }] of groups) {
      if (durable.snapshot !== null) deepStrictEqual(new Uint8Array(durable.snapshot.data), written.get(`${g}:${durable.snapshot.index}`), "a snapshot's data read back differs from what was written");
    }
    // The longest matching prefix: equal states (a hard state written twice) count as the later.
    let which = -1;
    for (let p = states.length - 1; p >= 0 && which < 0; p--) if (matches(recovered, states[p] ?? null)) which = p;
    if (which < 0) throw new FuzzFinding(`recovered a state that no prefix of the written records had: ${describeState(recovered)}; the complete log was ${describeState(states[states.length - 1] ?? null)}`);
    if (which < mustKeep) throw new FuzzFinding(`recovered only ${which} of the ${mustKeep} records of segments that are not the last: durable records lost without an error (${describeState(recovered)})`);
    outcomes.count(which === states.length - 1 ? "recovered: everything written" : "recovered: a prefix (a torn tail cut)");
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

function describeState(state: RecoveredState | null): string {
  if (state === null) return "(none)";
  const groups = [...state].map(([g, log]) => {
    const entries = log.entries.map((e) => `${e.index}@${e.term}`).join(",");
    return `group ${g}: snapshot ${log.snapshot === null ? "none" : `${log.snapshot.index}@${log.snapshot.term}`}, entries [${entries}], hard state ${log.hardState === null ? "none" : `${log.hardState.length} bytes`}`;
  });
  return groups.length === 0 ? "nothing" : groups.join("; ");
}

export async function fuzzStorage(options: FuzzRun): Promise<FuzzReport> {
  // tmpfs where there is one: thousands of small fsyncs.
  const root = mkdtempSync(join(existsDir("/dev/shm") ? "/dev/shm" : tmpdir(), "synod-fuzz-"));
  try {
    return await runFuzzAsync("storage", storageInput, (input, outcomes) => checkInput(input, outcomes, root), options);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function existsDir(path: string): boolean {
  try {
    return readdirSync(path) !== undefined;
  } catch {
    return false;
  }
}
