/**
 * Deliberately broken variants of the Multi-Paxos engine, each a mistake a real
 * implementation shipped or a classic one. They exist so the simulator can prove it catches
 * every one (`synod sim --protocol paxos --mutant NAME`); the production engine never
 * selects one.
 */
export const PAXOS_MUTANTS = {
  "accept-below-promise":
    "accepts a slot at a ballot lower than the one promised, as long as it is not below the ballot already accepted there (ScyllaDB #6139)",
  "count-stale-promise": "counts a promise that answers an older ballot of its own toward the current phase 1 (MyPaxos #18)",
  "skip-phase1": "a new leader proposes what its own log holds, ignoring the values the promises report, and overwrites what a minority accepted",
  "answer-before-durable": "sends promises and acceptances before the promise or the accepted value is durable",
  "apply-unchosen": "hands slots to the state machine once accepted, before they are chosen",
  "noop-fill-without-phase1": "fills the holes in a new leader's own log with no-ops without asking phase 1 what was accepted there",
  "learn-any-ballot": "an acceptor told a slot is chosen takes whatever it accepted there, at any ballot, for the chosen value",
  "read-without-quorum": "serves linearizable reads at the chosen prefix without confirming its ballot with a quorum",
  "count-own-undurable": "a leader counts its own acceptances toward a majority before they are durable, while its Readies are pipelined",
} as const;

export type PaxosMutant = keyof typeof PAXOS_MUTANTS;

export function isPaxosMutant(name: string): name is PaxosMutant {
  return Object.hasOwn(PAXOS_MUTANTS, name);
}
