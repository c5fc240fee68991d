/**
 * One node's switchboard between its replicas and its peers: each hosted replica gets a
 * `Network` of its own that tags what it sends with its group, and every envelope that
 * arrives is handed to the replica of its group. The node keeps one link per peer node
 * (in the runtime, one TCP connection) whatever the number of groups; this is the only
 * place that knows which replica a message is for.
 */
import { assert } from "../common/assert.js";
import type { NodeId } from "../engine/contract.js";
import type { Network } from "../replica/contract.js";
import { assertGroupId, isGroupId, type GroupEnvelope, type GroupId } from "./group.js";

/** Takes a message for one hosted replica (a `Replica.receive`, which validates it). */
export type GroupReceiver = (from: NodeId, message: unknown) => void;

export interface GroupRouterOptions<M> {
  /** Sends an envelope to a peer node; false when it was dropped at once. */
  send(to: NodeId, envelope: GroupEnvelope<M>): boolean;
  /**
   * A message arrived for a group this node does not host. It is dropped (and counted);
   * the runtime will answer it later (a replica removed, or not yet created here).
   */
  unknownGroup?(from: NodeId, group: GroupId): void;
}

/** What became of an incoming envelope. */
export type RouteOutcome = "delivered" | "unknown-group" | "malformed";

export class GroupRouter<M> {
  private readonly receivers = new Map<GroupId, GroupReceiver>();
  /** Envelopes dropped because their group is not hosted here. */
  droppedUnknownGroup = 0;
  /** Envelopes dropped because their group field is not a group id (a broken or hostile peer). */
  droppedMalformed = 0;

  constructor(private readonly options: GroupRouterOptions<M>) {}

  /** Hosts a replica of `group`: its messages go to `receive`; it sends through the returned network. */
  host(group: GroupId, receive: GroupReceiver): Network<M> {
    assertGroupId(group);
    assert(!this.receivers.has(group), `group ${group} is hosted already`);
    this.receivers.set(group, receive);
    return { send: (to, message) => this.options.send(to, { group, message }) };
  }

  /** Stops hosting `group`: later messages for it count as unknown. */
  unhost(group: GroupId): void {
    this.receivers.delete(group);
  }

  hosts(group: GroupId): boolean {
    return this.receivers.has(group);
  }

  /** The hosted groups, in ascending order. */
  get groups(): GroupId[] {
    return [...this.receivers.keys()].sort((a, b) => a - b);
  }

  /**
   * Hands an envelope that arrived from `from` to its group's replica. Never throws for
   * what a peer sent: a group id that is not one, or a group not hosted here, is counted
   * and dropped.
   */
  deliver(from: NodeId, envelope: GroupEnvelope<unknown>): RouteOutcome {
    if (!isGroupId(envelope.group)) {
      this.droppedMalformed++;
      return "malformed";
    }
    const receive = this.receivers.get(this.target(envelope.group));
    if (receive === undefined) {
      this.droppedUnknownGroup++;
      this.options.unknownGroup?.(from, envelope.group);
      return "unknown-group";
    }
    receive(from, envelope.message);
    return "delivered";
  }

  /** The group whose replica gets a message tagged `group` (a hook point for the mutants). */
  protected target(group: GroupId): GroupId {
    return group;
  }
}
