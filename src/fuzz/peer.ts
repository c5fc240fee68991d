/**
 * Fuzzes the peer protocol at the function level, along the path an adopted connection's
 * bytes take (src/runtime/transport/inbound.ts): the frame decoder (chunks split anyhow),
 * the group header (`0xc1 | LEB128 group`) or a heartbeat batch (runtime/transport/heartbeat-batch.ts),
 * the msgpack codec, then each engine's message
 * validator, and then the engine itself: a message the validator lets through is stepped
 * into a live engine of a three-node cluster, which must not throw (an engine trusts a
 * validated message's shape; an assertion there would stop the node). The hello check of a
 * new connection is fuzzed too.
 *
 * Inputs: random byte streams; and message-shaped objects of every type of both engines,
 * with field values replaced by hostile ones, fields dropped or swapped, encoded, framed,
 * then byte-mutated. Allowed outcomes at each stage: a value, or InvalidInputError.
 */
import fc from "fast-check";
import { FrameDecoder, frame } from "../core/wire/frame.js";
import { HEARTBEAT_BATCH_PREFIX, isHeartbeatBatch, readGroupHeader, tagWithGroup } from "../core/wire/group.js";
import { decodeHeartbeatBatch } from "../runtime/transport/heartbeat-batch.js";
import { decodeMessage, encodeMessage } from "../runtime/transport/codec.js";
import { checkHello } from "../runtime/transport/handshake.js";
import { raftFactory } from "../core/raft/index.js";
import { paxosFactory } from "../core/paxos/index.js";
import { encodeMembership } from "../core/engine/membership.js";
import type { Engine, EngineFactory } from "../core/engine/contract.js";
import { classify, FuzzFinding, mutate, mutationArbitrary, runFuzz, type FuzzReport, type FuzzRun, type Mutation, type Outcomes } from "./harness.js";

type FieldKind = "index" | "positive" | "flag" | "entries" | "data" | "bytes" | "membership" | "optional-flag" | "optional-index";

const RAFT_MESSAGES: Record<string, Record<string, FieldKind>> = {
  vote: { term: "index", preVote: "flag", lastIndex: "index", lastTerm: "index", transfer: "optional-flag" },
  "timeout-now": { term: "index" },
  "vote-response": { term: "index", preVote: "flag", granted: "flag" },
  append: { term: "index", prevIndex: "index", prevTerm: "index", commit: "index", entries: "entries" },
  "append-response": { term: "index", reject: "flag", index: "index", hintIndex: "index", hintTerm: "index" },
  heartbeat: { term: "index", commit: "index", readRound: "index" },
  "heartbeat-response": { term: "index", readRound: "index" },
  propose: { term: "index", data: "data" },
  "read-index": { term: "index", requestId: "index", lease: "optional-flag" },
  "read-index-response": { term: "index", requestId: "index", index: "index" },
  snapshot: { term: "index", index: "positive", snapshotTerm: "index", size: "index", offset: "index", chunk: "bytes", membership: "membership" },
  "snapshot-response": { term: "index", index: "index", received: "index" },
};

const PAXOS_MESSAGES: Record<string, Record<string, FieldKind>> = {
  prepare: { ballot: "index", from: "positive", probe: "flag", transfer: "optional-flag" },
  promise: { ballot: "index", probe: "flag", from: "positive", through: "index", complete: "flag", commit: "index", entries: "entries" },
  nack: { ballot: "index", promised: "index", probe: "flag", behind: "flag" },
  accept: { ballot: "index", commit: "index", entries: "entries" },
  accepted: { ballot: "index", index: "index", last: "index" },
  heartbeat: { ballot: "index", commit: "index", readRound: "index" },
  "heartbeat-response": { ballot: "index", readRound: "index", index: "index" },
  propose: { ballot: "index", data: "data" },
  "read-index": { ballot: "index", requestId: "index", lease: "optional-flag" },
  "read-index-response": { ballot: "index", requestId: "index", index: "index" },
  snapshot: { ballot: "index", index: "positive", snapshotTerm: "index", size: "index", offset: "index", chunk: "bytes", membership: "membership" },
  "snapshot-response": { ballot: "index", index: "index", received: "index" },
  "timeout-now": { ballot: "index", commit: "optional-index" },
};

/** Small numbers, so that messages meet the engine's own terms and indexes; now and then huge ones. */
const smallIndex = fc.oneof({ weight: 9, arbitrary: fc.nat({ max: 12 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 53 - 1, 2 ** 32, 1000) });
const membership = fc
  .tuple(fc.uniqueArray(fc.integer({ min: 1, max: 5 }), { maxLength: 4 }), fc.boolean())
  .map(([voters, autoLeave]) => ({ voters, outgoing: [], learners: [], autoPromote: [], autoLeave, context: new Uint8Array(0) }));
const entryData = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 12 }).map((data) => ({ data })) },
  { weight: 1, arbitrary: membership.map((m) => ({ data: encodeMembership(m), kind: "config" })) },
);
const entries = fc
  .tuple(smallIndex, smallIndex, fc.array(entryData, { maxLength: 4 }))
  .map(([start, term, list]) => list.map((e, i) => ({ index: start + 1 + i, term, ...e })));

function fieldValue(kind: FieldKind): fc.Arbitrary<unknown> {
  switch (kind) {
    case "index":
      return smallIndex;
    case "positive":
      return smallIndex.map((n) => n + 1);
    case "flag":
      return fc.boolean();
    case "optional-flag":
      return fc.option(fc.boolean(), { nil: undefined });
    case "optional-index":
      return fc.option(smallIndex, { nil: undefined });
    case "entries":
      return entries;
    case "data":
      return fc.array(fc.uint8Array({ maxLength: 12 }), { maxLength: 3 });
    case "bytes":
      return fc.uint8Array({ maxLength: 16 });
    case "membership":
      return fc.option(membership, { nil: undefined });
  }
}

/** A well-formed message of one of `specs`' types (most pass the validator). */
function messageArbitrary(specs: Record<string, Record<string, FieldKind>>): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    ...Object.entries(specs).map(([type, fields]) => {
      const record: Record<string, fc.Arbitrary<unknown>> = { type: fc.constant(type) };
      for (const [field, kind] of Object.entries(fields)) record[field] = fieldValue(kind);
      return fc.record(record).map((m) => Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)));
    }),
  );
}

/** Hostile values for a field: wrong types, edges of numbers, containers. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, -0, 0.5, NaN, Infinity, 2 ** 53, -(2 ** 53), 2n ** 64n - 1n, null, true, "", "1", [], {}, new Uint8Array(0)),
  // Objects that break String() and template literals: their conversion methods are not functions.
  fc.constantFrom({ toString: 1 }, { toString: 1, valueOf: 1 }, { toJSON: 1 }),
  fc.anything({ maxDepth: 2, maxKeys: 3, withTypedArray: true, withNullPrototype: true }),
);

type ObjectMutation = { readonly kind: "set"; readonly field: string; readonly value: unknown } | { readonly kind: "delete"; readonly field: string } | { readonly kind: "swap"; readonly a: number; readonly b: number };

const fieldName = fc.constantFrom("synod", "clusterId", "to", "http", "type", "term", "ballot", "index", "commit", "entries", "from", "size", "offset", "chunk", "membership", "data", "prevIndex", "through", "__proto__", "constructor");
const objectMutation: fc.Arbitrary<ObjectMutation> = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), field: fieldName, value: hostileValue }),
  fc.record({ kind: fc.constant("delete" as const), field: fieldName }),
  fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
);

function mutateObject(message: Record<string, unknown>, mutation: ObjectMutation): Record<string, unknown> {
  const out = { ...message };
  if (mutation.kind === "set") Object.defineProperty(out, mutation.field, { value: mutation.value, enumerable: true, writable: true, configurable: true });
  else if (mutation.kind === "delete") delete out[mutation.field];
  else {
    const keys = Object.keys(out);
    const a = keys[mutation.a % keys.length];
    const b = keys[mutation.b % keys.length];
    if (a !== undefined && b !== undefined) [out[a], out[b]] = [out[b], out[a]];
  }
  return out;
}

type EngineName = "raft" | "paxos";

/** One connection's byte stream, and where it is cut into chunks. */
interface PeerStream {
  readonly bytes: Uint8Array;
  readonly cuts: readonly number[];
}

/** A fresh engine (a follower, or a leader by a staged election) and the streams it receives. */
interface PeerInput {
  readonly engine: EngineName;
  readonly leader: boolean;
  readonly streams: readonly PeerStream[];
}

function framed(message: Record<string, unknown>, group: number): Uint8Array {
  let encoded: Uint8Array;
  try {
    encoded = encodeMessage(message);
  } catch {
    encoded = encodeMessage({ unencodable: true });
  }
  return frame(group < 0 ? encoded : tagWithGroup(group, encoded));
}

/** A hello as a dialer sends it to node 1 of cluster "fuzz" (see handshake.ts). */
const hello = fc.record({ synod: fc.constant(1), clusterId: fc.constantFrom("fuzz", "other"), from: fc.nat({ max: 4 }), to: fc.nat({ max: 2 }), http: fc.constantFrom("http://127.0.0.1:1", "ftp://x") });

/**
 * Two chunks of one snapshot transfer from node 2 (round 1), the second where the first
 * ended, each declaring a size of its own: a receiver must not trust the second's.
 */
function snapshotTransfer(engine: EngineName): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 }), fc.nat({ max: 20 }), fc.nat({ max: 20 })).map(([first, second, size1, size2]) => {
    const round = engine === "raft" ? { term: 1 } : { ballot: 2 ** 20 + 2 };
    const chunk = (offset: number, length: number, size: number): Uint8Array => framed({ type: "snapshot", ...round, index: 5, snapshotTerm: 1, size: Math.max(size, offset + length), offset, chunk: new Uint8Array(length) }, 0);
    return Uint8Array.from([...chunk(0, first, size1), ...chunk(first, second, size2)]);
  });
}

/**
 * A heartbeat batch's frame: entries of kind 0 to 2 (3 is none) for groups 0 to 3, now and
 * then a number that is not a count, cut anywhere.
 */
const batchNumber = fc.oneof({ weight: 19, arbitrary: smallIndex }, { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 32) });
const heartbeatBatch: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.array(fc.tuple(fc.constantFrom(0, 1, 2, 3), fc.nat({ max: 3 }), batchNumber, batchNumber, batchNumber), { maxLength: 8 }), fc.nat())
  .map(([entries, cut]) => {
    const flat = entries.flatMap(([kind, ...rest]) => (kind === 2 ? [kind, ...rest.slice(0, 3)] : [kind, ...rest]));
    const kept = cut % 4 === 0 ? flat.slice(0, cut % (flat.length + 1)) : flat;
    return frame(Uint8Array.from([...HEARTBEAT_BATCH_PREFIX, ...encodeMessage(kept)]));
  });

function streamOf(engine: EngineName): fc.Arbitrary<Uint8Array> {
  const messages = fc.oneof({ weight: 5, arbitrary: messageArbitrary(engine === "raft" ? RAFT_MESSAGES : PAXOS_MESSAGES) }, { weight: 1, arbitrary: hello });
  const shaped = fc
    .tuple(messages, fc.array(objectMutation, { maxLength: 3 }), fc.oneof(fc.constant(0), fc.constant(-1), fc.nat({ max: 2 ** 32 - 1 })))
    .map(([message, mutations, group]) => framed(mutations.reduce(mutateObject, message), group));
  const frames = fc.array(fc.oneof({ weight: 4, arbitrary: shaped }, { weight: 1, arbitrary: heartbeatBatch }), { minLength: 1, maxLength: 3 }).map((list) => Uint8Array.from(list.flatMap((bytes) => [...bytes])));
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((payload) => frame(payload)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 4, arbitrary: frames },
    { weight: 1, arbitrary: snapshotTransfer(engine) },
    { weight: 4, arbitrary: fc.tuple(frames, fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 })).map(([bytes, list]) => list.reduce((b: Uint8Array, m: Mutation) => mutate(b, m), bytes)) },
  );
}

const peerInput: fc.Arbitrary<PeerInput> = fc.constantFrom<EngineName>("raft", "paxos").chain((engine) =>
  fc.record({
    engine: fc.constant(engine),
    leader: fc.boolean(),
    streams: fc.array(fc.record({ bytes: streamOf(engine), cuts: fc.array(fc.nat({ max: 200 }), { maxLength: 4 }) }), { minLength: 1, maxLength: 4 }),
  }),
);

type AnyEngine = Engine<unknown, unknown>;

/** Node 1 of a three-node cluster, fresh for each input so that a failure replays from its input alone. */
function freshEngine(factory: EngineFactory<unknown, unknown>, leader: boolean): AnyEngine {
  const engine = factory.create({ id: 1, peers: [1, 2, 3], durable: { hardState: null, snapshot: null, entries: [] }, appliedIndex: 0, seed: 1 });
  if (leader) stageElection(engine);
  return engine;
}

/** Ticks until node 1 campaigns, and grants it node 2's vote (or promise) until it leads. */
function stageElection(engine: AnyEngine): void {
  for (let i = 0; i < 200 && engine.status().role !== "leader"; i++) {
    engine.tick();
    while (engine.hasReady()) {
      const ready = engine.ready();
      engine.advance(ready);
      for (const { message } of [...ready.messages, ...ready.messagesAfterPersist]) {
        const m = message as Record<string, unknown>;
        if (m["type"] === "vote") engine.step(2, { type: "vote-response", term: m["term"], preVote: m["preVote"], granted: true });
        if (m["type"] === "prepare") engine.step(2, { type: "promise", ballot: m["ballot"], probe: m["probe"], from: m["from"], through: (m["from"] as number) - 1, complete: true, commit: 0, entries: [] });
      }
    }
  }
}

function bytesAsLength(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? `<${value.length} bytes>` : value;
}

/** Steps a validated message from node 2 or 3 and lets time pass; the engine must not throw. */
function stepInto(engine: AnyEngine, factory: EngineFactory<unknown, unknown>, message: unknown, from: number): void {
  try {
    engine.step(from, message);
    for (let i = 0; i < 3; i++) {
      engine.tick();
      while (engine.hasReady()) engine.advance(engine.ready());
    }
  } catch (error) {
    const description = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new FuzzFinding(`the ${factory.name} engine threw on a message its validator accepted (${JSON.stringify(message, bytesAsLength)}): ${description}`);
  }
}

function chunksOf(stream: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, stream.length]) {
    chunks.push(stream.subarray(start, point));
    start = point;
  }
  return chunks;
}

const helloIdentity = { clusterId: "fuzz", nodeId: 1, isKnownPeer: (id: number) => id === 2 || id === 3 };

function checkStream(stream: PeerStream, outcomes: Outcomes, engineName: EngineName, factory: EngineFactory<unknown, unknown>, engine: AnyEngine): void {
  const decoder = new FrameDecoder({ frameBytesMax: 1 << 16 });
  const payloads: Uint8Array[] = [];
  for (const chunk of chunksOf(stream.bytes, stream.cuts)) {
    const got = classify(outcomes, "frame", () => decoder.push(chunk));
    if (got === undefined) break;
    payloads.push(...got);
  }
  for (const payload of payloads) {
    if (isHeartbeatBatch(payload)) {
      const heartbeats = classify(outcomes, "heartbeat batch", () => decodeHeartbeatBatch(payload));
      for (const { message } of heartbeats ?? []) stepValidated(message, outcomes, engineName, factory, engine, payload.length);
      continue;
    }
    const tagged = classify(outcomes, "group header", () => readGroupHeader(payload));
    if (tagged === undefined) continue;
    const value = classify(outcomes, "msgpack", () => decodeMessage(tagged.message));
    if (value === undefined) continue;
    // The same value as a connection's first frame: the hello check never throws.
    try {
      checkHello(value, helloIdentity);
    } catch (error) {
      throw new FuzzFinding(`checkHello threw ${String(error)}`);
    }
    stepValidated(value, outcomes, engineName, factory, engine, payload.length);
  }
}

/** Validates a decoded value as the engine's message, and steps it in if it passes. */
function stepValidated(value: unknown, outcomes: Outcomes, engineName: EngineName, factory: EngineFactory<unknown, unknown>, engine: AnyEngine, payloadBytes: number): void {
  const validate = factory.validateMessage;
  if (validate === undefined) throw new FuzzFinding(`${factory.name} has no message validator`);
  const message = classify(outcomes, `${engineName} message`, () => validate.call(factory, value));
  if (message === undefined) return;
  stepInto(engine, factory, message, 2 + (payloadBytes % 2));
}

export function fuzzPeer(options: FuzzRun): FuzzReport {
  const factories: Record<EngineName, EngineFactory<unknown, unknown>> = {
    raft: raftFactory() as EngineFactory<unknown, unknown>,
    paxos: paxosFactory() as EngineFactory<unknown, unknown>,
  };
  return runFuzz(
    "peer",
    peerInput,
    (input, outcomes) => {
      const factory = factories[input.engine];
      const engine = freshEngine(factory, input.leader);
      if (input.leader) outcomes.count(`${input.engine} as ${engine.status().role}`);
      for (const stream of input.streams) checkStream(stream, outcomes, input.engine, factory, engine);
    },
    options,
  );
}
