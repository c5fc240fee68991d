import { assert } from "../common/assert.js";
import type { Prng } from "../common/prng.js";
import { validateEndpoints, type Endpoint, type Picker, type Strategy } from "./endpoint.js";
import { HealthCheck, resolveHealthCheckOptions, type HealthCheckOptions } from "./health.js";
import { createPicker, type PickerOptions } from "./create-picker.js";
import { assertIntegerIn, assertTime, withDefaults } from "./options.js";
import { ejectionLimit, OutlierDetector, resolveOutlierOptions, type OutlierOptions } from "./outlier.js";
import { resolveSlowStartOptions, slowStartFactor, type SlowStartOptions } from "./slow-start.js";

/** Everything a `Balancer` can be tuned with; every field is optional (defaults in `DEFAULT_BALANCER_OPTIONS`). */
export interface BalancerOptions extends Partial<HealthCheckOptions>, Partial<OutlierOptions>, Partial<SlowStartOptions> {
  /**
   * Below this percentage of endpoints available (healthy and not ejected), the balancer
   * panics and spreads requests over all endpoints; an integer in [0, 100], default 50.
   * 0 never panics (and `pick` returns null when nothing is available).
   */
  readonly panicThresholdPercent?: number;
  /** Options of the underlying picker (the hash picker's virtual nodes). */
  readonly picker?: PickerOptions;
}

export type ResolvedBalancerOptions = HealthCheckOptions & OutlierOptions & SlowStartOptions & { readonly panicThresholdPercent: number };

export const DEFAULT_BALANCER_OPTIONS: ResolvedBalancerOptions = resolveBalancerOptions({});

/** Fills in defaults and asserts every option is in range (a bad value is a configuration bug). */
export function resolveBalancerOptions(options: BalancerOptions = {}): ResolvedBalancerOptions {
  const panicThresholdPercent = withDefaults({ panicThresholdPercent: 50 }, options).panicThresholdPercent;
  assertIntegerIn("panicThresholdPercent", panicThresholdPercent, 0, 100);
  return Object.freeze({
    ...resolveHealthCheckOptions(options),
    ...resolveOutlierOptions(options),
    ...resolveSlowStartOptions(options),
    panicThresholdPercent,
  });
}

/** How an endpoint looks to the balancer; `unhealthy` (active checks) wins over `ejected` (passive). */
export type EndpointHealth = "healthy" | "unhealthy" | "ejected";

/** One endpoint in `Balancer.stats`. */
export interface EndpointStats {
  readonly id: string;
  /** The configured weight. */
  readonly weight: number;
  /**
   * The weight it is given now: 0 while it is out of rotation, `weight` times the slow
   * start factor while it ramps up, `weight` otherwise (and for every endpoint in panic).
   */
  readonly effectiveWeight: number;
  readonly inFlight: number;
  /** Outcomes reported (`reportSuccess` + `reportFailure`) since it was added. */
  readonly requests: number;
  /** Failures reported since it was added. */
  readonly failures: number;
  readonly health: EndpointHealth;
  /** When its current ejection ends; null when it is not ejected. */
  readonly ejectedUntilMs: number | null;
  /** Recent ejections (they decay; see `OutlierDetector`). */
  readonly ejectionCount: number;
}

export interface BalancerStats {
  readonly strategy: Strategy;
  /** True when too few endpoints are available and every endpoint is in rotation. */
  readonly panic: boolean;
  /** Endpoints healthy and not ejected. */
  readonly available: number;
  readonly endpoints: readonly EndpointStats[];
}

/** Draws from the rotation after the picker's choice was refused (slow start, `avoid`), before falling back to a scan. */
const REDRAWS_MAX = 8;

/** The balancer's record of one endpoint; the picker sees it as an `Endpoint` (id and weight). */
class Member<E extends Endpoint> implements Endpoint {
  readonly id: string;
  weight: number;
  endpoint: E;
  readonly health: HealthCheck;
  readonly outlier: OutlierDetector;
  inFlight = 0;
  requests = 0;
  failures = 0;
  /** When active checks last made it healthy; -Infinity if they never changed their mind. */
  healthySinceMs = Number.NEGATIVE_INFINITY;
  /** Healthy and not ejected, as of the last refresh (set false at once when it goes out). */
  available: boolean;
  /** When it last became available; its slow start counts from here. */
  availableSinceMs = Number.NEGATIVE_INFINITY;
  /** Until when slow start holds it back; -Infinity when it does not. */
  slowStartUntilMs = Number.NEGATIVE_INFINITY;
  /** In the picker's list now (so the picker counts its in-flight requests too). */
  inRotation = false;

  constructor(endpoint: E, options: ResolvedBalancerOptions, available: boolean) {
    this.id = endpoint.id;
    this.weight = endpoint.weight;
    this.endpoint = endpoint;
    this.health = new HealthCheck(options);
    this.outlier = new OutlierDetector(options);
    this.available = available;
  }
}

/**
 * A picker with failover: it owns a picker of one strategy over the endpoints that are
 * available, and the state that decides which those are. Pure and synchronous; the SDK and
 * the proxy drive it with their clock (`nowMs`, from a monotonic source such as
 * `performance.now()`) and their results:
 *
 * - `reportCheck(id, ok, nowMs)` after each active health check (`GET /v1/status`);
 *   `healthyThreshold`/`unhealthyThreshold` results in a row flip it (`HealthCheck`).
 * - `reportSuccess`/`reportFailure(id, nowMs)` after each request; `consecutiveFailures`
 *   failures in a row eject the endpoint for a while, at most `ejectionPercentMax` of them
 *   at once (`OutlierDetector`). An ejection ends when its time is up, not earlier: a
 *   passing status check says the node answers checks, not that it serves requests.
 * - `onStart`/`onFinish(id)` around each request, for the in-flight counts the load-aware
 *   strategies read.
 *
 * An endpoint is available when it is healthy and not ejected. When fewer than
 * `panicThresholdPercent` of the endpoints are available, the balancer panics and picks
 * over all of them (Envoy's panic threshold): a few survivors taking the whole load would
 * fall over too, and a check that is wrong about many nodes should not take them all out.
 *
 * Slow start: an endpoint that becomes available again (healthy after unhealthy, back from
 * an ejection, or added by `update` to a non-empty balancer) is admitted with probability
 * `slowStartFactor` when the picker chooses it, ramping from `slowStartPercentMin` to 1 over
 * `slowStartWindowMs`; a refused pick is redrawn at random from the rotation (in proportion
 * to weight for the weight-aware strategies, uniformly for round-robin and
 * least-outstanding), so its long-run share is that of weight `factor * weight` whatever
 * the strategy. Redrawn rather than asked of the picker again, because a load-aware picker
 * would choose the idle returning endpoint again and again (the very burst slow start is
 * for). Admission rather than scaled weights, because round-robin and least-outstanding
 * ignore weights, and it needs no picker rebuild while the ramp runs. The hash strategy
 * does not slow start (nor does Envoy's ring hash): a key must keep going to one endpoint.
 *
 * Cost: `pick` is the picker's pick plus one comparison (and a lookup in `avoid` when
 * given), allocation-free; the available set is rebuilt (O(n) and a picker update) only
 * after a state change or when an ejection expires.
 */
export class Balancer<E extends Endpoint = Endpoint> {
  readonly strategy: Strategy;
  readonly options: ResolvedBalancerOptions;
  private readonly prng: Prng;
  private members: Member<E>[] = [];
  private byId = new Map<string, Member<E>>();
  private readonly picker: Picker<Member<E>>;
  /** The picker's list, in member order. */
  private rotation: Member<E>[] = [];
  /** Running sums of the redraw weights over `rotation`; see `redraw`. */
  private redrawSums = new Float64Array(0);
  private readonly redrawByWeight: boolean;
  private readonly slowStarts: boolean;
  private panicking = false;
  private availableCount = 0;
  private ejectedCount = 0;
  /** A report changed an endpoint's state; the rotation is rebuilt before the next pick. */
  private dirty = true;
  /** The membership or weights changed; the picker is updated even if the rotation's members did not. */
  private weightsChanged = false;
  /** The earliest moment an ejection ends, after which the rotation must be rebuilt. */
  private refreshAtMs = Number.POSITIVE_INFINITY;

  /**
   * `endpoints` are validated (see `validateEndpoints`) and start healthy and at full
   * weight. `prng` is owned from here on (it draws slow-start admissions and redraws; the
   * picker gets a fork of it).
   */
  constructor(strategy: Strategy, endpoints: readonly E[], prng: Prng, options: BalancerOptions = {}) {
    validateEndpoints(endpoints);
    this.strategy = strategy;
    this.options = resolveBalancerOptions(options);
    this.prng = prng;
    this.redrawByWeight = strategy === "weighted" || strategy === "p2c" || strategy === "hash";
    this.slowStarts = strategy !== "hash" && this.options.slowStartWindowMs > 0;
    this.members = endpoints.map((endpoint) => new Member(endpoint, this.options, true));
    for (const member of this.members) this.byId.set(member.id, member);
    // Built over the whole list at once, so round-robin draws its random starting position.
    this.picker = createPicker<Member<E>>(strategy, this.members, prng.fork(), options.picker ?? {});
    this.adopt(this.members.slice());
    this.refresh(Number.NEGATIVE_INFINITY);
  }

  /**
   * The endpoint for the next request, or null when there is none (no endpoints, or none
   * available with `panicThresholdPercent` 0). `key` reaches the hash strategy. `avoid`
   * (ids) is for retries: an endpoint in it is returned only when every endpoint in
   * rotation is in it. Allocation-free.
   */
  pick(nowMs: number, key?: string, avoid?: ReadonlySet<string>): E | null {
    if (this.dirty || nowMs >= this.refreshAtMs) this.refresh(nowMs);
    const first = this.picker.pick(key);
    if (first === null) return null;
    if (this.admits(first, nowMs, avoid)) return first.endpoint;
    return this.pickAgain(first, nowMs, avoid).endpoint;
  }

  /** A request began on endpoint `id`, which must be a current endpoint. */
  onStart(id: string): void {
    const member = this.byId.get(id);
    // Not assert(cond, `...`): the message would be built on every call of this hot path.
    if (member === undefined) assert(false, `onStart for unknown endpoint ${JSON.stringify(id)}`);
    member.inFlight += 1;
    if (member.inRotation) this.picker.onStart(id);
  }

  /** A request on `id` ended, whatever its outcome; ignored for an endpoint removed meanwhile. */
  onFinish(id: string): void {
    const member = this.byId.get(id);
    if (member === undefined) return;
    if (member.inFlight > 0) member.inFlight -= 1;
    if (member.inRotation) this.picker.onFinish(id);
  }

  /** A request on `id` succeeded: it ends the endpoint's run of failures. Ignored for an unknown id. */
  reportSuccess(id: string, nowMs: number): void {
    assertTime(nowMs);
    const member = this.byId.get(id);
    if (member === undefined) return;
    member.requests += 1;
    member.outlier.recordSuccess(nowMs);
  }

  /**
   * A request on `id` failed in a way that says the endpoint is in trouble (a refused
   * connection, a timeout, a 5xx; not a 404 or a failed compare, which are answers). May
   * eject it (see the class comment). Ignored for an unknown id.
   */
  reportFailure(id: string, nowMs: number): void {
    assertTime(nowMs);
    const member = this.byId.get(id);
    if (member === undefined) return;
    member.requests += 1;
    member.failures += 1;
    if (!member.outlier.recordFailure(nowMs)) return;
    if (this.dirty || nowMs >= this.refreshAtMs) this.refresh(nowMs);
    if (this.ejectedCount >= ejectionLimit(this.members.length, this.options.ejectionPercentMax)) return;
    const untilMs = member.outlier.eject(nowMs);
    this.ejectedCount += 1;
    this.refreshAtMs = Math.min(this.refreshAtMs, untilMs);
    member.available = false;
    this.dirty = true;
  }

  /** The result of an active health check of `id`. Ignored for an unknown id. */
  reportCheck(id: string, ok: boolean, nowMs: number): void {
    assertTime(nowMs);
    const member = this.byId.get(id);
    if (member === undefined || !member.health.record(ok)) return;
    if (ok) member.healthySinceMs = nowMs;
    else member.available = false;
    this.dirty = true;
  }

  /**
   * Replaces the endpoint list (validated). Endpoints that stay keep their state (health,
   * ejection, counters, in-flight) and take their new weight and object; new ones start
   * healthy and slow-start from `nowMs`, unless the balancer had no endpoints before.
   */
  update(endpoints: readonly E[], nowMs: number): void {
    validateEndpoints(endpoints);
    assertTime(nowMs);
    const hadMembers = this.members.length > 0;
    const byId = new Map<string, Member<E>>();
    const members = endpoints.map((endpoint) => {
      let member = this.byId.get(endpoint.id);
      if (member === undefined) {
        member = new Member(endpoint, this.options, !hadMembers);
        member.healthySinceMs = nowMs;
      }
      member.endpoint = endpoint;
      member.weight = endpoint.weight;
      byId.set(member.id, member);
      return member;
    });
    this.members = members;
    this.byId = byId;
    this.weightsChanged = true;
    this.refresh(nowMs);
  }

  /** The current endpoints, in the order given. */
  endpoints(): readonly E[] {
    return this.members.map((member) => member.endpoint);
  }

  /**
   * Whether endpoint `id` is available at `nowMs`: healthy by the active checks and not
   * ejected (in panic too: panic widens the rotation, it does not make an endpoint well).
   * False for an unknown id. Allocation-free, for callers that prefer one endpoint (a
   * leader) when it is fit and fall back to `pick` otherwise.
   */
  isAvailable(id: string, nowMs: number): boolean {
    if (this.dirty || nowMs >= this.refreshAtMs) this.refresh(nowMs);
    return this.byId.get(id)?.available ?? false;
  }

  /** Whether the balancer is in panic at `nowMs` (see the class comment). */
  panic(nowMs: number): boolean {
    if (this.dirty || nowMs >= this.refreshAtMs) this.refresh(nowMs);
    return this.panicking;
  }

  /** A snapshot for statistics pages and metrics (allocates; not for the request path). */
  stats(nowMs: number): BalancerStats {
    assertTime(nowMs);
    if (this.dirty || nowMs >= this.refreshAtMs) this.refresh(nowMs);
    return {
      strategy: this.strategy,
      panic: this.panicking,
      available: this.availableCount,
      endpoints: this.members.map((member) => this.memberStats(member, nowMs)),
    };
  }

  private memberStats(member: Member<E>, nowMs: number): EndpointStats {
    const ejected = member.outlier.isEjected(nowMs);
    return {
      id: member.id,
      weight: member.weight,
      effectiveWeight: this.effectiveWeight(member, nowMs),
      inFlight: member.inFlight,
      requests: member.requests,
      failures: member.failures,
      health: !member.health.healthy ? "unhealthy" : ejected ? "ejected" : "healthy",
      ejectedUntilMs: ejected ? member.outlier.ejectedUntilMs : null,
      ejectionCount: member.outlier.ejectionCount(nowMs),
    };
  }

  private effectiveWeight(member: Member<E>, nowMs: number): number {
    if (!member.inRotation) return 0;
    if (this.panicking || member.slowStartUntilMs <= nowMs) return member.weight;
    return member.weight * slowStartFactor(member.availableSinceMs, nowMs, this.options);
  }

  /** Whether `member`, chosen by the picker or a redraw, may take the request. */
  private admits(member: Member<E>, nowMs: number, avoid: ReadonlySet<string> | undefined): boolean {
    if (avoid !== undefined && avoid.has(member.id)) return false;
    if (this.panicking || member.slowStartUntilMs <= nowMs) return true;
    return this.prng.float() < slowStartFactor(member.availableSinceMs, nowMs, this.options);
  }

  /**
   * The picker's choice was refused: redraw at random from the rotation a bounded number of
   * times; then, if `avoid` refused it, scan for any endpoint outside `avoid` (ignoring
   * slow start, which is statistical); failing that the first choice stands.
   */
  private pickAgain(first: Member<E>, nowMs: number, avoid: ReadonlySet<string> | undefined): Member<E> {
    for (let draw = 0; draw < REDRAWS_MAX; draw++) {
      const candidate = this.redraw();
      if (this.admits(candidate, nowMs, avoid)) return candidate;
    }
    if (avoid === undefined || !avoid.has(first.id)) return first;
    const count = this.rotation.length;
    const start = Math.floor(this.prng.float() * count);
    for (let step = 0; step < count; step++) {
      const candidate = this.rotation[(start + step) % count] as Member<E>;
      if (!avoid.has(candidate.id)) return candidate;
    }
    return first;
  }

  /** A member of the (non-empty) rotation at random, in proportion to `redrawSums`. */
  private redraw(): Member<E> {
    const sums = this.redrawSums;
    const target = this.prng.float() * (sums[sums.length - 1] as number);
    let low = 0;
    let high = sums.length - 1; // the first sum above target is in [low, high]; <= 14 rounds
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((sums[middle] as number) <= target) low = middle + 1;
      else high = middle;
    }
    return this.rotation[low] as Member<E>;
  }

  /**
   * Recomputes who is available at `nowMs`, starts the slow start of those that came back,
   * decides panic, and updates the picker when the rotation (or a weight) changed.
   */
  private refresh(nowMs: number): void {
    let available = 0;
    let ejected = 0;
    let refreshAtMs = Number.POSITIVE_INFINITY;
    for (const member of this.members) {
      const isEjected = member.outlier.isEjected(nowMs);
      if (isEjected) {
        ejected += 1;
        refreshAtMs = Math.min(refreshAtMs, member.outlier.ejectedUntilMs);
      }
      const isAvailable = member.health.healthy && !isEjected;
      if (isAvailable && !member.available) this.startSlowStart(member);
      member.available = isAvailable;
      if (isAvailable) available += 1;
    }
    const total = this.members.length;
    this.panicking = total > 0 && available * 100 < this.options.panicThresholdPercent * total;
    this.availableCount = available;
    this.ejectedCount = ejected;
    this.refreshAtMs = refreshAtMs;
    this.dirty = false;
    const rotation = this.panicking ? this.members.slice() : this.members.filter((member) => member.available);
    if (this.weightsChanged || !sameMembers(rotation, this.rotation)) this.rotate(rotation);
    this.weightsChanged = false;
  }

  /** It became available: ramp from the moment it did (its return, or its healthy check), not from now. */
  private startSlowStart(member: Member<E>): void {
    member.availableSinceMs = Math.max(member.healthySinceMs, member.outlier.ejectedUntilMs);
    member.slowStartUntilMs = this.slowStarts ? member.availableSinceMs + this.options.slowStartWindowMs : Number.NEGATIVE_INFINITY;
  }

  private rotate(rotation: Member<E>[]): void {
    this.picker.update(rotation);
    for (const member of rotation) {
      // The picker keeps counts only for endpoints it had; bring it to the balancer's.
      for (let missing = member.inFlight - this.picker.inFlight(member.id); missing > 0; missing--) this.picker.onStart(member.id);
      for (let extra = this.picker.inFlight(member.id) - member.inFlight; extra > 0; extra--) this.picker.onFinish(member.id);
    }
    this.adopt(rotation);
  }

  /** Makes `rotation` (the picker's list now) the balancer's: flags and redraw sums. */
  private adopt(rotation: Member<E>[]): void {
    for (const member of this.rotation) member.inRotation = false;
    const sums = new Float64Array(rotation.length);
    let sum = 0;
    rotation.forEach((member, index) => {
      member.inRotation = true;
      sum += this.redrawByWeight ? member.weight : 1;
      sums[index] = sum;
    });
    this.rotation = rotation;
    this.redrawSums = sums;
  }
}

function sameMembers<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
