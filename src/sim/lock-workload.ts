/**
 * The lock workload (`synod sim --workload lock`): besides the KV clients, lock clients
 * contend for one lock with the recipe `client.lock` runs (src/client/lock.ts), deciding with
 * the same code (core/kv/lock-turn.ts): grant a lease, create a key of their own under the
 * lock's name attached to it (a transaction that creates it only if it is not there), then
 * read every contender, linearizably, until theirs is the oldest; hold the lock a while,
 * keeping the lease alive, and release it by revoking the lease. The SDK waits for its
 * predecessor's delete with a watch; these clients read again every few tens of ms, which
 * changes when they look, not what they decide.
 *
 * Some clients stop keeping their lease alive now and then, as a paused process does, while
 * waiting or holding: their keys expire, which is what lock recipes get wrong (a waiter whose
 * key is gone, or whose predecessor only gave up its place). The lock checker
 * (sim/check/locks.ts) then holds every acquisition to what the cluster committed.
 */
import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import { contenderKey, lockTurn, type Contender, type LockMutant } from "../core/kv/lock-turn.js";
import { LockChecker } from "./check/locks.js";
import type { SimParams } from "./params.js";

/** The lock the clients contend for, and the prefix its contenders' keys share. */
export const LOCK_NAME = "lock";
/** Lock client endpoints are numbered from here (apart from KV, lease and watch clients); their keep-alives use a session of id + KEEPALIVE_SESSION_OFFSET. */
const LOCK_CLIENT_ID_BASE = 1900;
export const KEEPALIVE_SESSION_OFFSET = 50;
const LOCK_CLIENTS = 4;
/** Times to live of the clients' leases, in ms of virtual time (the store's minimum is 1 s). */
const TTLS_MS = [1000, 1500, 2500] as const;
/** The chance that an attempt stops keeping its lease alive at some point (a paused process). */
const LAPSE_PROBABILITY = 0.3;

export type LockRequestBody =
  | { readonly op: "grant"; readonly ttlMs: number }
  | { readonly op: "keepalive"; readonly lease: number }
  | { readonly op: "create"; readonly key: string; readonly lease: number }
  | { readonly op: "read"; readonly prefix: string }
  | { readonly op: "revoke"; readonly lease: number };

/** A lock client's request; `sessionId` and `sequence` make it a write in that session (reads ignore them). */
export type LockRequest = LockRequestBody & { readonly type: "lock-request"; readonly sessionId: number; readonly sequence: number };

export type LockResult =
  | { readonly op: "grant"; readonly lease: number }
  | { readonly op: "keepalive" | "revoke"; readonly found: boolean }
  /** The contender key's creation revision, or null when its lease was gone. */
  | { readonly op: "create"; readonly token: number | null }
  | { readonly op: "read"; readonly contenders: readonly Contender[]; readonly revision: number };

/** A node's answer; "refused" when the request certainly took no effect. No answer at all when its outcome is unknown. */
export type LockResponse = { readonly type: "lock-response"; readonly sequence: number } & ({ readonly outcome: "ok"; readonly result: LockResult } | { readonly outcome: "refused"; readonly leaderHint: NodeId | null });

export interface LockWorld {
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** Sends `request` to node `to` over a client link; its answers come back to `reply` the same way. */
  send(to: NodeId, request: LockRequest, reply: (from: NodeId, response: LockResponse) => void): void;
  note(actor: string, text: () => string): void;
}

export interface LockStats {
  readonly acquisitions: number;
  readonly lapses: number;
}

export class LockWorkload {
  readonly checker = new LockChecker(`${LOCK_NAME}/`);
  private readonly clients: LockClient[] = [];

  constructor(world: LockWorld, nodeIds: readonly NodeId[], params: SimParams, prng: Prng, mutant: LockMutant | null) {
    for (let i = 0; i < LOCK_CLIENTS; i++) this.clients.push(new LockClient(LOCK_CLIENT_ID_BASE + i + 1, nodeIds, params, prng.fork(), world, this.checker, mutant));
  }

  start(): void {
    for (const client of this.clients) client.start();
  }

  stop(): void {
    for (const client of this.clients) client.stop();
  }

  stats(): LockStats {
    return { acquisitions: this.checker.acquisitionCount, lapses: this.clients.reduce((sum, client) => sum + client.lapses, 0) };
  }
}

/** One contender: attempt after attempt to take the lock, hold it, and give it back. */
class LockClient {
  private sequence = 0;
  private keepAliveSequence = 0;
  private leaderGuess: NodeId | null = null;
  private stopped = false;
  /** The attempt under way: its lease, and whether it still renews it. */
  private attempt: { readonly lease: number; readonly ttlMs: number; renewing: boolean } | null = null;
  private pending: { readonly sequence: number; readonly onAnswer: (result: LockResult) => void } | null = null;
  lapses = 0;

  constructor(
    private readonly id: number,
    private readonly nodes: readonly NodeId[],
    private readonly params: SimParams,
    private readonly prng: Prng,
    private readonly world: LockWorld,
    private readonly checker: LockChecker,
    private readonly mutant: LockMutant | null,
  ) {}

  start(): void {
    this.world.after(this.prng.int(0, 200_000), () => this.begin());
  }

  stop(): void {
    this.stopped = true;
  }

  private begin(): void {
    this.attempt = null;
    if (this.stopped) return;
    const ttlMs = this.prng.pick(TTLS_MS);
    this.request({ op: "grant", ttlMs }, (result) => {
      if (result.op !== "grant") return;
      const attempt = { lease: result.lease, ttlMs, renewing: true };
      this.attempt = attempt;
      this.keepAliveLater(attempt);
      if (this.prng.float() < LAPSE_PROBABILITY) {
        this.world.after(this.prng.int(0, 3 * ttlMs) * 1000, () => {
          if (this.attempt !== attempt) return;
          attempt.renewing = false;
          this.lapses++;
          this.world.note(this.actor, () => `stops renewing lease ${attempt.lease}, as a paused process would`);
        });
      }
      this.create(attempt, contenderKey(LOCK_NAME, result.lease));
    }, () => this.retryLater(() => this.begin()));
  }

  /** Creates the contender's key if it is not there; a retry after an unknown outcome finds it there. */
  private create(attempt: { readonly lease: number }, key: string): void {
    if (this.over(attempt)) return;
    this.request({ op: "create", key, lease: attempt.lease }, (result) => {
      if (result.op !== "create") return;
      if (result.token === null) return this.end(attempt, "its lease expired before its key was made");
      this.poll(attempt, { key, createRevision: result.token }, null);
    }, () => this.retryLater(() => this.create(attempt, key)));
  }

  /** Reads every contender and takes its turn: hold, wait and read again, or give up. */
  private poll(attempt: { readonly lease: number }, own: Contender, waitedFor: string | null): void {
    if (this.over(attempt)) return;
    this.request({ op: "read", prefix: `${LOCK_NAME}/` }, (result) => {
      if (result.op !== "read" || this.over(attempt)) return;
      const turn = lockTurn(result.contenders, own, { waitedFor, mutant: this.mutant });
      if (turn.kind === "gone") return this.end(attempt, `its key ${own.key} is gone`);
      if (turn.kind === "wait") return this.world.after(this.prng.int(10_000, 60_000), () => this.poll(attempt, own, turn.predecessor.key));
      this.checker.acquired({ client: this.id, key: own.key, token: own.createRevision, revision: result.revision, atMicros: this.world.now() });
      this.world.note(this.actor, () => `holds the lock with token ${own.createRevision} (read at revision ${result.revision})`);
      this.world.after(this.prng.int(20_000, 300_000), () => this.release(attempt));
    }, () => this.retryLater(() => this.poll(attempt, own, waitedFor)));
  }

  /** Gives the lock back by revoking the lease (its key goes with it); a lost answer leaves the lease to expire. */
  private release(attempt: { readonly lease: number }): void {
    if (this.over(attempt)) return;
    this.request({ op: "revoke", lease: attempt.lease }, () => this.end(attempt, "released"), () => this.end(attempt, "released (the revoke's answer was lost)"));
  }

  private end(attempt: { readonly lease: number }, why: string): void {
    if (this.attempt !== attempt) return;
    this.world.note(this.actor, () => `attempt with lease ${attempt.lease} over: ${why}`);
    this.attempt = null;
    this.world.after(this.prng.int(10_000, 200_000), () => this.begin());
  }

  private over(attempt: { readonly lease: number }): boolean {
    return this.stopped || this.attempt !== attempt;
  }

  /** Renews the lease at a third of its time to live while the attempt lasts and renews; answers are not awaited. */
  private keepAliveLater(attempt: { readonly lease: number; readonly ttlMs: number; renewing: boolean }): void {
    this.world.after((attempt.ttlMs * 1000) / 3, () => {
      if (this.over(attempt) || !attempt.renewing) return;
      const request: LockRequest = { type: "lock-request", sessionId: this.id + KEEPALIVE_SESSION_OFFSET, sequence: ++this.keepAliveSequence, op: "keepalive", lease: attempt.lease };
      this.world.send(this.leaderGuess ?? this.prng.pick(this.nodes), request, () => undefined);
      this.keepAliveLater(attempt);
    });
  }

  private retryLater(action: () => void): void {
    this.world.after(this.prng.int(10_000, 100_000), action);
  }

  /** Sends one request (answers to an earlier one are ignored from now on); `onFailure` if it is refused or none comes in time. */
  private request(body: LockRequestBody, onAnswer: (result: LockResult) => void, onFailure: () => void): void {
    if (this.stopped) return;
    const sequence = ++this.sequence;
    const request = { ...body, type: "lock-request", sessionId: this.id, sequence } as LockRequest;
    const target = this.leaderGuess ?? this.prng.pick(this.nodes);
    this.pending = { sequence, onAnswer };
    this.world.send(target, request, (from, response) => {
      if (this.pending?.sequence !== response.sequence) return; // late or duplicate
      this.pending = null;
      if (response.outcome === "refused") {
        this.leaderGuess = response.leaderHint !== from ? response.leaderHint : null;
        return onFailure();
      }
      this.leaderGuess = from;
      onAnswer(response.result);
    });
    this.world.after(this.params.clientTimeoutMicros, () => {
      if (this.pending?.sequence !== sequence) return;
      this.pending = null;
      this.leaderGuess = null;
      onFailure();
    });
  }

  private get actor(): string {
    return `lock client ${this.id}`;
  }
}
