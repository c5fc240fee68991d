/**
 * The requests a replica holds until the log answers them (replica.ts): proposals waiting
 * to apply, reads waiting for a read index and then for the state machine, leadership
 * transfers waiting for another node to lead, and configuration changes waiting to apply.
 * Each waits at most the request timeout, and each ends in one of the ways errors.ts names
 * — so a caller knows whether a write may still take effect. The replica tells this what
 * the log did (entries applied, a read index confirmed, the leader changed, the node
 * removed or stopped); this decides who is answered, and how.
 */
import { emptyMap, writable } from "../common/empty.js";
import type { NodeId } from "../engine/contract.js";
import type { ProposalKey, Waiter } from "./contract.js";
import { LeaderChangedError, RequestTimeoutError, StoppedError, TransferOvertakenError, TransferTimeoutError, WriteOutcomeUnknownError } from "./errors.js";

interface Pending<T> {
  readonly waiter: Waiter<T>;
  readonly deadlineMs: number;
}

interface PendingProposal<R> extends Pending<R> {
  readonly key: ProposalKey;
  /** Kept to propose again on a change of leader (`reproposeOnLeaderChange`). */
  readonly data: Uint8Array;
}

interface PendingRead extends Pending<void> {
  readonly id: number;
  /** Set once the engine says at which index the read is safe. */
  index: number | null;
}

export type TransferAnswer = { readonly leader: NodeId; readonly term: number };

interface PendingTransfer extends Pending<TransferAnswer> {
  readonly target: NodeId | null;
}

interface PendingChange extends Pending<{ readonly index: number }> {
  readonly index: number;
  readonly term: number;
}

export class WaitingRequests<R> {
  // The maps are the shared empty one while nothing waits (an idle range's replica holds
  // none of its own: see core/common/empty.ts), and go back to it once empty again.
  /** Proposals waiting to apply, by ticket (arrival order, so the expired ones are first). */
  private proposals = emptyMap<number, PendingProposal<R>>();
  /** The tickets waiting for each key (a client that retries through the same node waits twice for one entry). */
  private ticketsByKey = emptyMap<ProposalKey, number[]>();
  private nextTicket = 1;
  private reads = emptyMap<number, PendingRead>();
  private nextReadId: number;
  /** Confirmed reads waiting for the state machine to apply up to their index. */
  private readsAwaitingApply: PendingRead[] = [];
  private transfers: PendingTransfer[] = [];
  /** Configuration changes this leader took, waiting to apply (their entry's index and term). */
  private changes: PendingChange[] = [];

  constructor(firstReadId: number) {
    this.nextReadId = firstReadId;
  }

  /** Proposals and reads waiting (what the replica's pendingRequestsMax bounds). */
  get requests(): number {
    return this.proposals.size + this.reads.size;
  }

  /** Whether nothing at all waits. */
  get none(): boolean {
    return this.proposals.size === 0 && this.reads.size === 0 && this.transfers.length === 0 && this.changes.length === 0;
  }

  addProposal(key: ProposalKey, data: Uint8Array, waiter: Waiter<R>, deadlineMs: number): void {
    const ticket = this.nextTicket++;
    this.proposals = writable(this.proposals);
    this.proposals.set(ticket, { waiter, key, data, deadlineMs });
    const tickets = this.ticketsByKey.get(key);
    this.ticketsByKey = writable(this.ticketsByKey);
    if (tickets === undefined) this.ticketsByKey.set(key, [ticket]);
    else tickets.push(ticket);
  }

  /** The id the engine is given for the next read. */
  takeReadId(): number {
    return this.nextReadId++;
  }

  addRead(id: number, waiter: Waiter<void>, deadlineMs: number): void {
    this.reads = writable(this.reads);
    this.reads.set(id, { id, waiter, deadlineMs, index: null });
  }

  addTransfer(target: NodeId | null, waiter: Waiter<TransferAnswer>, deadlineMs: number): void {
    this.transfers.push({ target, waiter, deadlineMs });
  }

  addChange(index: number, term: number, waiter: Waiter<{ readonly index: number }>, deadlineMs: number): void {
    this.changes.push({ index, term, waiter, deadlineMs });
  }

  /** The engine confirmed read `id` at `index`: it waits for the state machine to apply that far. */
  readConfirmed(id: number, index: number): void {
    const read = this.reads.get(id);
    if (read === undefined) return;
    read.index = index;
    this.readsAwaitingApply.push(read);
  }

  /** Answers the proposals whose entries applied, matched by the key `keyOf` recovers from each result. */
  applied(results: readonly R[], keyOf: (result: R) => ProposalKey | null): void {
    if (this.proposals.size === 0) return;
    for (const result of results) {
      const key = keyOf(result);
      if (key === null) continue;
      const tickets = this.ticketsByKey.get(key);
      if (tickets === undefined) continue;
      this.ticketsByKey.delete(key);
      for (const ticket of tickets) {
        const pending = this.proposals.get(ticket);
        if (pending === undefined) continue;
        this.proposals.delete(ticket);
        pending.waiter.resolve(result);
      }
    }
    this.releaseEmptyMaps();
  }

  /** Confirmed reads whose index the state machine reached are served. */
  serveReads(appliedIndex: number): void {
    if (this.readsAwaitingApply.length === 0) return;
    const waiting: PendingRead[] = [];
    for (const read of this.readsAwaitingApply) {
      if ((read.index as number) > appliedIndex) {
        waiting.push(read);
        continue;
      }
      this.reads.delete(read.id);
      read.waiter.resolve();
    }
    this.readsAwaitingApply = waiting;
    this.releaseEmptyMaps();
  }

  /** Changes applied (resolved) or overwritten by another leader's log (rejected). */
  settleChanges(appliedIndex: number, entryTerm: (index: number) => number | null): void {
    if (this.changes.length === 0) return;
    this.changes = this.changes.filter((change) => {
      const term = entryTerm(change.index);
      if (term !== null && term !== change.term) {
        change.waiter.reject(new LeaderChangedError());
        return false;
      }
      if (appliedIndex < change.index) return true;
      change.waiter.resolve({ index: change.index });
      return false;
    });
  }

  /**
   * The term or the leader changed. A transfer ends once another node leads. Proposals wait:
   * one may still commit under the new leader (`repropose`, when given, proposes each again,
   * in ticket order, so this node's writes reach the new leader in the order they were
   * made). A read not yet confirmed dies with the leadership it waited on (a deposed leader
   * drops its pending rounds; a follower's forwarded read goes unanswered): it fails at once
   * with a retryable error rather than time out.
   */
  leaderChanged(self: NodeId, leader: NodeId | null, term: number, repropose: ((data: Uint8Array) => void) | null): void {
    if (leader !== null && leader !== self && this.transfers.length > 0) {
      for (const transfer of this.transfers) {
        if (transfer.target === null || transfer.target === leader) transfer.waiter.resolve({ leader, term });
        else transfer.waiter.reject(new TransferOvertakenError(transfer.target, leader));
      }
      this.transfers = [];
    }
    if (repropose !== null) for (const pending of this.proposals.values()) repropose(pending.data);
    const error = new LeaderChangedError();
    for (const [id, read] of this.reads) {
      if (read.index !== null) continue;
      this.reads.delete(id);
      read.waiter.reject(error);
    }
  }

  /** Requests kept in arrival order, so the expired ones are at the front: each ends as its kind says. */
  expire(nowMs: number, timeoutMs: number, proposalExpired: () => void): void {
    for (const [ticket, proposal] of this.proposals) {
      if (proposal.deadlineMs > nowMs) break;
      this.proposals.delete(ticket);
      this.forgetTicket(proposal.key, ticket);
      proposalExpired();
      proposal.waiter.reject(new RequestTimeoutError("write", timeoutMs));
    }
    let expiredReads = false;
    for (const [id, read] of this.reads) {
      if (read.deadlineMs > nowMs) break;
      this.reads.delete(id);
      expiredReads = true;
      read.waiter.reject(new RequestTimeoutError("read", timeoutMs));
    }
    if (expiredReads) this.readsAwaitingApply = this.readsAwaitingApply.filter((read) => read.deadlineMs > nowMs);
    this.releaseEmptyMaps();
    while (this.transfers.length > 0 && (this.transfers[0] as PendingTransfer).deadlineMs <= nowMs) {
      this.transfers.shift()?.waiter.reject(new TransferTimeoutError(timeoutMs));
    }
    while (this.changes.length > 0 && (this.changes[0] as PendingChange).deadlineMs <= nowMs) {
      this.changes.shift()?.waiter.reject(new RequestTimeoutError("membership change", timeoutMs));
    }
  }

  /** Every waiting proposal fails with `error` (their outcome unknown: each may still apply, for no one). */
  failProposals(error: Error): void {
    if (this.proposals.size === 0) return;
    for (const pending of this.proposals.values()) pending.waiter.reject(error);
    this.proposals = emptyMap();
    this.ticketsByKey = emptyMap();
  }

  /** The replica stopped: a proposal's or change's outcome is unknown (it may still commit on the other members); the rest were not served. */
  failAll(): void {
    this.failProposals(new WriteOutcomeUnknownError("the node stopped before the write completed"));
    const stopped = new StoppedError();
    for (const pending of this.reads.values()) pending.waiter.reject(stopped);
    for (const pending of this.transfers) pending.waiter.reject(stopped);
    const changeUnknown = new WriteOutcomeUnknownError("the node stopped before the membership change completed");
    for (const pending of this.changes) pending.waiter.reject(changeUnknown);
    this.reads = emptyMap();
    this.readsAwaitingApply = [];
    this.transfers = [];
    this.changes = [];
  }

  /** Maps emptied go back to the shared empty one, so a range idle again holds none of its own. */
  private releaseEmptyMaps(): void {
    if (this.proposals.size === 0 && this.ticketsByKey.size === 0) {
      this.proposals = emptyMap();
      this.ticketsByKey = emptyMap();
    }
    if (this.reads.size === 0) this.reads = emptyMap();
  }

  /** Forgets a timed-out proposal's ticket: its entry may still apply, for no one. */
  private forgetTicket(key: ProposalKey, ticket: number): void {
    const tickets = this.ticketsByKey.get(key);
    if (tickets === undefined) return;
    const left = tickets.filter((t) => t !== ticket);
    if (left.length === 0) this.ticketsByKey.delete(key);
    else this.ticketsByKey.set(key, left);
  }
}
