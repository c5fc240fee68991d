import type { NodeId } from "../core/engine/contract.js";
import type { RangeDescriptor } from "../core/multi/ranges.js";
import type { OpKind } from "./history.js";

/** A client's request to a node. `sequence` is unique per client. */
export interface ClientRequest {
  readonly type: "client-request";
  readonly clientId: number;
  readonly sequence: number;
  readonly op: OpKind;
  readonly key: string;
  readonly value?: string;
  readonly expected?: string;
  /** With splits (`--splits`): the range the client's view of the ranges puts the key in. */
  readonly range?: number;
}

/** A node's answer. "refused" means the request certainly did not and will not take effect. */
export type ClientResponse =
  | { readonly type: "client-response"; readonly sequence: number; readonly outcome: "ok"; readonly output: string | null | boolean }
  | {
      readonly type: "client-response";
      readonly sequence: number;
      readonly outcome: "refused";
      readonly reason: string;
      readonly leaderHint: NodeId | null;
      /** With splits: the range named does not own the key (nothing was applied): refresh the ranges and send it again. */
      readonly mismatch?: boolean;
      /** With splits, on a range mismatch: the ranges the answering node holds, as it sees them now (what the client refreshes its view from). */
      readonly ranges?: readonly RangeDescriptor[];
    };

/** What travels on the simulated network. */
export type Packet<M> =
  | { readonly type: "peer"; readonly message: M }
  | ClientRequest
  | ClientResponse;
