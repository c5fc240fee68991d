/**
 * The watch workload (`synod sim --workload watch`): besides the KV clients, watchers follow
 * every key, or one, as `GET /v1/watch` serves them — the production cursor
 * (core/kv/watch-cursor.ts) reading each node's applied store — over connections that keep
 * their order (TCP) and break when the node crashes. A watcher reconnects, to any node,
 * with the id of the last message it got: after a crash, and now and then on its own, the
 * way clients are moved between members. After the heal each one follows the leader, so it
 * ends up to date.
 *
 * The watch checker (sim/check/watches.ts) then asks of every watcher what etcd promises and
 * its robustness tests check (etcd #17247, a duplicated event; #20221, old events from a
 * lagging member): across every reconnect it saw exactly the changes the cluster committed
 * for its keys, in revision order, none twice and none missed, and in the end all of them;
 * a compaction that cut its resume point is the only gap, and the node said so.
 */
import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import { watchResumeStart, type KvMutant } from "../core/kv/mutants.js";
import { CompactedError, type KvChange, type KvStore } from "../core/kv/store.js";
import { WatchCursor, type WatchMessage, type WatchStart } from "../core/kv/watch-cursor.js";
import { WatchChecker, type WatchSegment } from "./check/watches.js";

/** What the watchers follow: every key, and one of the KV clients' keys. */
const WATCHED: readonly { readonly key: string; readonly prefix: boolean }[] = [
  { key: "", prefix: true },
  { key: "k1", prefix: false },
];
/** Watcher endpoints are numbered from here (apart from the KV and lease clients). */
const WATCHER_ID_BASE = 1800;
/** Changes a node reads for a stream at a time, and pages before it lets other work run. */
const PAGE_CHANGES = 64;
const PAGES_PER_PUMP = 16;
/** How long a watcher stays with a node before it moves on its own, on average, and how soon it reconnects. */
const STAY_MICROS_MEAN = 400_000;
const RECONNECT_MICROS_MIN = 5_000;
const RECONNECT_MICROS_MAX = 50_000;

export interface WatchWorld {
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** One way over a client link; a connection keeps its messages in order on top of it. */
  linkDelayMicros(): number;
  /** Runs `action` in node `id`'s process: later if it is paused, never if it is down. */
  onNode(id: NodeId, action: () => void): boolean;
  /** The node leading now, if any: where a watcher goes once the faults are over. */
  leader(): NodeId | null;
  note(actor: string, text: () => string): void;
}

export interface WatchStats {
  readonly changes: number;
  readonly connections: number;
  readonly compacted: number;
}

/** A node's open streams, and its store (this incarnation's). */
interface NodeStreams {
  readonly kv: KvStore;
  readonly streams: Set<Stream>;
  pumpScheduled: boolean;
}

interface Stream {
  readonly watcher: Watcher;
  readonly connection: number;
  readonly cursor: WatchCursor;
  /** When its last message arrives: a connection delivers in the order sent. */
  deliveredAtMicros: number;
}

export class WatchWorkload {
  private readonly served = new Map<NodeId, NodeStreams>();
  private readonly watchers: Watcher[] = [];
  readonly checker = new WatchChecker();
  private settling = false;

  constructor(
    private readonly world: WatchWorld,
    private readonly nodeIds: readonly NodeId[],
    prng: Prng,
    private readonly mutant: KvMutant | null,
  ) {
    WATCHED.forEach((watched, i) => this.watchers.push(new Watcher(WATCHER_ID_BASE + i + 1, watched, this, prng.fork())));
  }

  start(): void {
    for (const watcher of this.watchers) watcher.connect(null);
  }

  /** The faults are over: each watcher moves to the leader, which has (or will have) every change. */
  settle(): void {
    this.settling = true;
    for (const watcher of this.watchers) watcher.connect(this.world.leader());
  }

  /** Node `id` built its store (boot, restart): its streams start over empty, and it reports what it commits. */
  attach(id: NodeId, kv: KvStore): void {
    this.drop(id);
    const node: NodeStreams = { kv, streams: new Set(), pumpScheduled: false };
    this.served.set(id, node);
    kv.setObserver({
      committed: (changes) => {
        this.checker.committed(changes);
        this.schedulePump(id, node);
      },
      restored: () => this.schedulePump(id, node),
    });
  }

  /** Node `id` crashed: its connections close, and their watchers hear so. */
  drop(id: NodeId): void {
    const node = this.served.get(id);
    if (node === undefined) return;
    this.served.delete(id);
    for (const stream of node.streams) this.closeStream(stream, () => stream.watcher.closed(stream.connection));
  }

  /** What the watchers went through: changes received, connections opened, resumes cut by a compaction. */
  stats(): WatchStats {
    const stats = { changes: 0, connections: 0, compacted: 0 };
    for (const watcher of this.watchers) {
      stats.changes += watcher.segments.reduce((sum, segment) => sum + segment.events.length, 0);
      stats.connections += watcher.connections;
      stats.compacted += watcher.segments.length - 1;
    }
    return stats;
  }

  /** Checks every watcher's history; throws InvariantViolation("watch") on the first wrong one. */
  check(): void {
    for (const watcher of this.watchers) this.checker.check(watcher.describe(), watcher.watched, watcher.segments, this.settling && watcher.followedLeader);
  }

  /** A watcher's request reached node `to`: it serves the stream, or the connection is refused. */
  open(watcher: Watcher, connection: number, to: NodeId, lastEventId: string | null): void {
    const taken = this.world.onNode(to, () => {
      const node = this.served.get(to);
      if (node === undefined) return this.deliver(() => watcher.closed(connection));
      const start: WatchStart | null = lastEventId === null ? { revision: 1, skip: 0 } : watchResumeStart(this.mutant, lastEventId, node.kv.currentRevision);
      if (start === null) throw new Error(`watcher ${watcher.id} sent an id no stream sent: ${lastEventId}`);
      if (start.revision < node.kv.compactRevision) {
        const compactRevision = node.kv.compactRevision;
        this.deliver(() => watcher.compacted(connection, compactRevision));
        return;
      }
      const stream: Stream = { watcher, connection, cursor: new WatchCursor({ ...watcher.watched, start }), deliveredAtMicros: 0 };
      node.streams.add(stream);
      watcher.opened(connection, stream, to);
      this.schedulePump(to, node);
    });
    if (!taken) this.deliver(() => watcher.closed(connection));
  }

  /** The watcher ends its connection to `node`. */
  close(stream: Stream, node: NodeId): void {
    this.served.get(node)?.streams.delete(stream);
  }

  private schedulePump(id: NodeId, node: NodeStreams): void {
    if (node.pumpScheduled) return;
    node.pumpScheduled = true;
    this.world.after(0, () => {
      node.pumpScheduled = false;
      if (this.served.get(id) !== node) return;
      this.world.onNode(id, () => this.pump(id, node));
    });
  }

  /** Sends each stream of node `id` what it has not sent yet, a bounded amount at a time. */
  private pump(id: NodeId, node: NodeStreams): void {
    if (this.served.get(id) !== node) return;
    let more = false;
    for (const stream of node.streams) {
      for (let page = 0; page < PAGES_PER_PUMP; page++) {
        let changes: KvChange[];
        try {
          changes = node.kv.changesAfter(stream.cursor.position, PAGE_CHANGES);
        } catch (error) {
          if (!(error instanceof CompactedError)) throw error;
          node.streams.delete(stream);
          this.closeStream(stream, () => stream.watcher.compacted(stream.connection, error.compactRevision));
          break;
        }
        if (changes.length === 0) {
          stream.cursor.caughtUp(node.kv.currentRevision);
          break;
        }
        const messages = stream.cursor.advance(changes, changes.length < PAGE_CHANGES, () => 0, Number.POSITIVE_INFINITY);
        for (const message of messages) this.send(stream, message);
        if (page === PAGES_PER_PUMP - 1) more = true;
      }
    }
    if (more) this.schedulePump(id, node);
  }

  private send(stream: Stream, message: WatchMessage): void {
    this.deliverInOrder(stream, () => stream.watcher.received(stream.connection, message));
  }

  private closeStream(stream: Stream, action: () => void): void {
    this.deliverInOrder(stream, action);
  }

  /** Over the stream's connection: after what it carried before. */
  private deliverInOrder(stream: Stream, action: () => void): void {
    const at = Math.max(stream.deliveredAtMicros, this.world.now() + this.world.linkDelayMicros());
    stream.deliveredAtMicros = at;
    this.world.after(at - this.world.now(), action);
  }

  /** An answer outside a stream (a refusal): one trip over the client link. */
  private deliver(action: () => void): void {
    this.world.after(this.world.linkDelayMicros(), action);
  }

  /** For a watcher: the world, and whether the run is settling. */
  get worldOf(): WatchWorld {
    return this.world;
  }

  get nodes(): readonly NodeId[] {
    return this.nodeIds;
  }

  get isSettling(): boolean {
    return this.settling;
  }
}

/** A client following one key or prefix through connections to one node after another. */
class Watcher {
  /** The connection in use (counted up at each connect): messages of older ones are stale. */
  private connection = 0;
  private stream: { readonly stream: Stream; readonly node: NodeId } | null = null;
  private lastEventId: string | null = null;
  /** What it saw: a segment from each start the checker must hold it to (a new one after a compaction). */
  readonly segments: WatchSegment[] = [];
  /** Whether its last connection was to the leader of the settled cluster. */
  followedLeader = false;

  constructor(
    readonly id: number,
    readonly watched: { readonly key: string; readonly prefix: boolean },
    private readonly workload: WatchWorkload,
    private readonly prng: Prng,
  ) {}

  get connections(): number {
    return this.connection;
  }

  describe(): string {
    return `watcher ${this.id} (${this.watched.prefix ? (this.watched.key === "" ? "every key" : `prefix ${JSON.stringify(this.watched.key)}`) : `key ${JSON.stringify(this.watched.key)}`})`;
  }

  /** Opens a connection to `to` (null: a node at random), leaving the one it had. */
  connect(to: NodeId | null): void {
    const world = this.workload.worldOf;
    if (this.stream !== null) this.workload.close(this.stream.stream, this.stream.node);
    this.stream = null;
    const connection = ++this.connection;
    const node = to ?? this.prng.pick(this.workload.nodes);
    this.followedLeader = this.workload.isSettling && to !== null;
    if (this.segments.length === 0) this.segments.push({ start: 1, events: [], lastRevision: 0 });
    const lastEventId = this.lastEventId;
    world.note(`watcher ${this.id}`, () => `-> ${node}: watch from ${lastEventId === null ? "revision 1" : `Last-Event-ID ${lastEventId}`}`);
    world.after(world.linkDelayMicros(), () => this.workload.open(this, connection, node, lastEventId));
  }

  opened(connection: number, stream: Stream, node: NodeId): void {
    if (connection !== this.connection) {
      this.workload.close(stream, node);
      return;
    }
    this.stream = { stream, node };
    if (this.workload.isSettling) return;
    // Moved to another node now and then, as a client's balancer would.
    const world = this.workload.worldOf;
    world.after(Math.round(this.prng.exponential(STAY_MICROS_MEAN)), () => {
      if (connection === this.connection && !this.workload.isSettling) this.connect(null);
    });
  }

  received(connection: number, message: WatchMessage): void {
    if (connection !== this.connection) return;
    const segment = this.segments[this.segments.length - 1] as WatchSegment;
    for (const change of message.changes) segment.events.push(change);
    segment.lastRevision = Math.max(segment.lastRevision, message.revision);
    this.lastEventId = message.id;
  }

  /** The node ended the stream (it crashed) or refused it (down): try again, elsewhere or there. */
  closed(connection: number): void {
    if (connection !== this.connection) return;
    this.stream = null;
    this.reconnectSoon();
  }

  /** Its resume point was compacted away: it starts again at the compaction point, knowing it missed what was before. */
  compacted(connection: number, compactRevision: number): void {
    if (connection !== this.connection) return;
    this.stream = null;
    this.workload.worldOf.note(`watcher ${this.id}`, () => `canceled: compacted through ${compactRevision}; starting again there`);
    this.segments.push({ start: compactRevision, events: [], lastRevision: compactRevision - 1 });
    this.lastEventId = String(compactRevision - 1);
    this.reconnectSoon();
  }

  private reconnectSoon(): void {
    const connection = this.connection;
    this.workload.worldOf.after(this.prng.int(RECONNECT_MICROS_MIN, RECONNECT_MICROS_MAX), () => {
      if (connection === this.connection) this.connect(this.workload.isSettling ? this.workload.worldOf.leader() : null);
    });
  }
}
