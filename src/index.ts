// The public API of the `synod` package. Everything else is internal.
export type {
  Admission,
  DurableState,
  Engine,
  EngineFactory,
  EngineInvariant,
  EngineOptions,
  EngineStatus,
  LogEntry,
  NodeId,
  Outbound,
  Ready,
  ReadState,
  Role,
  Snapshot,
  TuningHints,
} from "./core/engine/contract.js";
export { ALL_ENGINE_INVARIANTS } from "./core/engine/contract.js";
export { AssertionError, assert } from "./core/common/assert.js";
export { InvalidInputError, MembershipChangeInProgressError, NotLeaderError, OverloadedError, SynodError } from "./core/common/errors.js";
export { limits } from "./core/common/limits.js";
export { Prng } from "./core/common/prng.js";
export { balanceLimits, createPicker, HashRingPicker, LeastOutstandingPicker, PowerOfTwoPicker, RoundRobinPicker, SmoothWeightedPicker, STRATEGIES, isStrategy, validateEndpoints, type Endpoint, type HashRingOptions, type Picker, type PickerOptions, type Strategy } from "./core/balance/index.js";
export {
  backoffMs,
  Balancer,
  DEFAULT_BACKOFF_OPTIONS,
  DEFAULT_BALANCER_OPTIONS,
  DEFAULT_RETRY_BUDGET_OPTIONS,
  RetryBudget,
  type BackoffOptions,
  type BalancerOptions,
  type BalancerStats,
  type EndpointHealth,
  type EndpointStats,
  type RetryBudgetOptions,
} from "./core/balance/index.js";
export type { ClientTls } from "./client/transport.js";
export { Client, SESSION_REOPENS_MAX, type CallOptions, type CasResult, type ClientOptions, type ClientStats, type DeleteOptions, type LeaseListOptions, type PutOptions, type RangeOptions, type ReadOptions, type RetryOptions } from "./client/client.js";
export {
  AbortedError,
  ClientClosedError,
  CompactedError,
  CompareFailedError,
  ConnectionError,
  HttpApiError,
  LeaseLostError,
  LeaseNotFoundError,
  NoEndpointError,
  NoLeaderError,
  NoQuorumError,
  NotMemberError,
  QueueFullError,
  RangeMismatchError,
  SequenceSupersededError,
  SessionExpiredError,
  TimeoutError,
  TransactionConflictError,
  TransactionFinishedError,
  UnavailableError,
} from "./client/errors.js";
// Ranges (docs/sharding.md): descriptors and the table a sharded cluster routes by; the transactional checker (docs/txn-checker.md).
export { RangeTable, type RangeDescriptor } from "./core/multi/ranges.js";
export { checkListAppend, checkRegisters } from "./sim/check/txn-check.js";
// The transaction types `Client.txn` takes are the client's; the state machine's own are KvTxn*.
export { CONSISTENCIES, type CompareOperator, type Consistency, type KeyValue, type MemberInfo, type MembersView, type NodeStatus, type RangeResult, type TxnCompare, type TxnOperation, type TxnRequest, type TxnResponse, type TxnResult } from "./client/api.js";
/** Earlier names of the client's `TxnCompare` and `TxnOperation`. */
export type { TxnCompare as ClientTxnCompare, TxnOperation as ClientTxnOperation } from "./client/api.js";
export { Watch, type WatchEvent, type WatchOptions, type WatchStats } from "./client/watch.js";
export { Lease } from "./client/lease.js";
export { Lock, type LockOptions } from "./client/lock.js";
export { Transaction, type TransactionOptions, type TransactionResult } from "./client/transaction.js";
export { Leadership, type ElectionLeader } from "./client/election.js";
export type { LeaseInfo } from "./client/api.js";
export { ClusterRouter, type ClusterRouterOptions, type RouterEndpoint, type RouterEndpointConfig, type RouterStats, type MembersFetcher, type StatusCheckResult, type StatusFetcher } from "./client/router.js";
export { DEFAULT_RAFT_CONFIG, RAFT_MUTANTS, RaftEngine, raftFactory, type RaftConfig, type RaftHardState, type RaftMessage, type RaftMutant } from "./core/raft/index.js";
export { leaseTicks } from "./core/raft/config.js";
export {
  decodeCommand,
  encodeCommand,
  type KvCommand,
  type RequestId,
  type TxnCommand,
  type TxnCompare as KvTxnCompare,
  type TxnCompareOperator,
  type TxnNumberTarget,
  type TxnOperation as KvTxnOperation,
} from "./core/kv/command.js";
export { MemoryKvBackend, type KvBackend, type KvRangeQuery } from "./core/kv/backend.js";
export { KvStore, NO_SESSION, type Applied, type KvChange, type KvEntry, type KvMeta, type KvRecord, type KvResult, type KvSession, type TxnOperationResult } from "./core/kv/store.js";
export { checkLinearizability, type LinearizabilityResult } from "./sim/check/linearizability.js";
export { parseHistory, type Operation, type OpKind, type OpStatus } from "./sim/history.js";
export { FAULT_CLASSES, type FaultClass, type SimParams } from "./sim/params.js";
export { PROTOCOLS } from "./sim/protocols.js";
export { SCENARIOS, SCENARIO_NAMES, type Scenario, type ScenarioContext } from "./sim/scenarios.js";
export { runSimulation, type SimOptions, type SimResult } from "./sim/simulation.js";
// The embedding API: your own state machine, replicated (docs/embedding.md).
export { COMMAND_BYTES_MAX, type Command, type ReplicatedStateMachine, type StateSnapshotBuilder } from "./core/replica/embedded.js";
export { ReplicatedNode, type NodeLogger, type ProposeOptions, type ReadBarrierOptions, type ReplicatedNodeOptions, type ReplicatedNodeStatus } from "./runtime/embed/replicated-node.js";
export { LeaderChangedError, RequestTimeoutError, StoppedError, TooManyRequestsError, TransferOvertakenError, TransferTimeoutError, WriteOutcomeUnknownError } from "./core/replica/errors.js";
export { StartupError } from "./runtime/server/data-dir.js";
export { defineSimModule, type SequentialModel, type SimClientWorkload, type SimOperation, type SimOutcome, type StateMachineSimModule, type SimApplication } from "./sim/app/module.js";
export { checkModelLinearizability, type ModelCheckResult, type ModelOperation } from "./sim/check/model-linearizability.js";
