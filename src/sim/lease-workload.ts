import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import type { SimParams } from "./params.js";

/** A lease client's request: grant a lease, attach its key, renew it. `sequence` is unique per client. */
export type LeaseRequest =
  | { readonly type: "lease-request"; readonly clientId: number; readonly sequence: number; readonly op: "grant"; readonly ttlMs: number }
  | { readonly type: "lease-request"; readonly clientId: number; readonly sequence: number; readonly op: "put"; readonly key: string; readonly lease: number }
  | { readonly type: "lease-request"; readonly clientId: number; readonly sequence: number; readonly op: "keepalive"; readonly lease: number };

/**
 * A node's answer: "ok" with the lease's id (a grant) or whether the lease existed (a put or
 * a keep-alive); "refused" when it certainly did not take effect.
 */
export type LeaseResponse =
  | { readonly type: "lease-response"; readonly sequence: number; readonly outcome: "ok"; readonly output: number | boolean }
  | { readonly type: "lease-response"; readonly sequence: number; readonly outcome: "refused"; readonly leaderHint: NodeId | null };

/** What a lease client tells the checker: a grant or keep-alive acknowledged, a key attached. */
export interface LeaseObserver {
  /** Lease `id` was granted (or renewed) by a request sent at `invokeMicros`: it lives `ttlMs` from then at least. */
  renewed(id: number, ttlMs: number, invokeMicros: number): void;
  /** `key` was attached to lease `id` (acknowledged). */
  attached(id: number, key: string): void;
}

export interface LeaseClientHost {
  now(): number;
  send(clientId: number, to: NodeId, request: LeaseRequest): void;
  after(delayMicros: number, action: () => void): void;
  note(actor: string, text: () => string): void;
}

/** Times to live the clients grant, in ms of virtual time (the store's minimum is 1 s). */
const TTLS_MS = [1000, 1500, 2500] as const;

/**
 * A process holding leases, one at a time: it grants one, attaches a key of its own to it,
 * renews it at a third of its time to live for a while (a keep-alive that gets no answer in
 * time is not retried: the next one goes to another node), then stops renewing and lets it
 * lapse, and starts again. Every grant and keep-alive acknowledged is told to the checker,
 * with when it was sent: the lease must live its time to live from then.
 */
export class LeaseClient {
  private sequence = 0;
  private leaderGuess: NodeId | null = null;
  private stopped = false;
  private leasesHeld = 0;
  /** The request awaiting an answer, and what to do with it. */
  private pending: { readonly sequence: number; readonly onAnswer: (response: LeaseResponse) => void } | null = null;

  constructor(
    readonly id: number,
    private readonly nodes: readonly NodeId[],
    private readonly params: SimParams,
    private readonly prng: Prng,
    private readonly host: LeaseClientHost,
    private readonly observer: LeaseObserver,
  ) {}

  start(): void {
    this.host.after(this.prng.int(0, 200_000), () => this.grant());
  }

  stop(): void {
    this.stopped = true;
  }

  onResponse(from: NodeId, response: LeaseResponse): void {
    const pending = this.pending;
    if (pending === null || pending.sequence !== response.sequence) return; // late or duplicate
    this.pending = null;
    if (response.outcome === "refused") this.leaderGuess = response.leaderHint !== from ? response.leaderHint : null;
    else this.leaderGuess = from;
    pending.onAnswer(response);
  }

  private grant(): void {
    if (this.stopped) return;
    const ttlMs = this.prng.pick(TTLS_MS);
    const invoked = this.host.now();
    this.request({ op: "grant", ttlMs }, (response) => {
      if (response.outcome !== "ok" || typeof response.output !== "number") return this.host.after(this.prng.int(10_000, 100_000), () => this.grant());
      const lease = response.output;
      this.observer.renewed(lease, ttlMs, invoked);
      this.leasesHeld++;
      const key = `lease/${this.id}/${this.leasesHeld}`;
      this.request({ op: "put", key, lease }, (answer) => {
        if (answer.outcome === "ok" && answer.output === true) this.observer.attached(lease, key);
      });
      // Renewed for 1 to 8 of its times to live, then let lapse.
      const renewUntil = invoked + this.prng.int(1, 8) * ttlMs * 1000;
      this.renewLater(lease, ttlMs, renewUntil);
    }, () => this.host.after(this.prng.int(10_000, 100_000), () => this.grant()));
  }

  private renewLater(lease: number, ttlMs: number, renewUntil: number): void {
    this.host.after((ttlMs * 1000) / 3, () => {
      if (this.stopped) return;
      if (this.host.now() >= renewUntil) {
        this.host.note(`lease client ${this.id}`, () => `lets lease ${lease} lapse`);
        return this.host.after(ttlMs * 1000 + this.prng.int(0, 500_000), () => this.grant());
      }
      const invoked = this.host.now();
      const next = (): void => this.renewLater(lease, ttlMs, renewUntil);
      this.request({ op: "keepalive", lease }, (response) => {
        if (response.outcome === "ok" && response.output === true) this.observer.renewed(lease, ttlMs, invoked);
        if (response.outcome === "ok" && response.output === false) return this.host.after(this.prng.int(10_000, 100_000), () => this.grant());
        next();
      }, next);
    });
  }

  /** Sends one request (answers to an earlier one are ignored from now on); `onTimeout` if none comes in time. */
  private request(body: { readonly op: "grant"; readonly ttlMs: number } | { readonly op: "put"; readonly key: string; readonly lease: number } | { readonly op: "keepalive"; readonly lease: number }, onAnswer: (response: LeaseResponse) => void, onTimeout: () => void = () => undefined): void {
    const sequence = ++this.sequence;
    const request = { type: "lease-request", clientId: this.id, sequence, ...body } as LeaseRequest;
    const target = this.leaderGuess ?? this.prng.pick(this.nodes);
    this.pending = { sequence, onAnswer };
    this.host.send(this.id, target, request);
    this.host.after(this.params.clientTimeoutMicros, () => {
      if (this.pending?.sequence !== sequence) return;
      this.pending = null;
      this.leaderGuess = null;
      onTimeout();
    });
  }
}
