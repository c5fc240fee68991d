import assert from "node:assert/strict";
import { test } from "node:test";
import { Prng } from "../common/prng.js";
import type { Endpoint, Picker } from "./endpoint.js";
import { endpointsOf } from "./fixtures.test-util.js";
import { PowerOfTwoPicker } from "./p2c.js";

/** Uniform random choice, the reference P2C must beat; it counts in-flight like the others. */
class UniformPicker extends PowerOfTwoPicker {
  private readonly draws: Prng;
  constructor(endpoints: readonly Endpoint[], prng: Prng) {
    super(endpoints, prng);
    this.draws = prng;
  }
  override pick(): Endpoint | null {
    return this.draws.pick(this.endpoints());
  }
}

interface LoadRun {
  /** Mean over ticks of (max - min) of in-flight counts per unit of weight. */
  meanSpread: number;
  picksById: Map<string, number>;
}

/**
 * A discrete-time load: `arrivalsPerTick` requests a tick, each lasting 1 + an exponential
 * number of ticks (mean `durationTicksMean`), so about arrivals * duration are in flight.
 */
function runLoad(picker: Picker, prng: Prng, ticks: number, arrivalsPerTick: number, durationTicksMean: number): LoadRun {
  const horizon = 64 * durationTicksMean;
  const finishing: string[][] = Array.from({ length: horizon }, () => []);
  const picksById = new Map<string, number>();
  let spreadSum = 0;
  for (let tick = 0; tick < ticks; tick++) {
    const due = finishing[tick % horizon]!;
    for (const id of due) picker.onFinish(id);
    due.length = 0;
    for (let i = 0; i < arrivalsPerTick; i++) {
      const chosen = picker.pick()!;
      picker.onStart(chosen.id);
      picksById.set(chosen.id, (picksById.get(chosen.id) ?? 0) + 1);
      const duration = Math.min(horizon - 1, 1 + Math.floor(prng.exponential(durationTicksMean)));
      finishing[(tick + duration) % horizon]!.push(chosen.id);
    }
    const perWeight = picker.endpoints().map((endpoint) => picker.inFlight(endpoint.id) / endpoint.weight);
    spreadSum += Math.max(...perWeight) - Math.min(...perWeight);
  }
  return { meanSpread: spreadSum / ticks, picksById };
}

test("p2c: the spread of in-flight load stays well below uniform random choice", () => {
  for (const count of [3, 10, 30]) {
    const endpoints = endpointsOf(count);
    const p2c = runLoad(new PowerOfTwoPicker(endpoints, new Prng(1)), new Prng(2), 4000, count, 10);
    const uniform = runLoad(new UniformPicker(endpoints, new Prng(1)), new Prng(2), 4000, count, 10);
    assert.ok(p2c.meanSpread < 0.5 * uniform.meanSpread, `${count} endpoints: p2c spread ${p2c.meanSpread.toFixed(2)} vs uniform ${uniform.meanSpread.toFixed(2)}`);
  }
});

test("p2c: under load, each endpoint's share of picks is near its share of weight", () => {
  const endpoints: Endpoint[] = [
    { id: "a", weight: 3 },
    { id: "b", weight: 1 },
    { id: "c", weight: 1 },
  ];
  const run = runLoad(new PowerOfTwoPicker(endpoints, new Prng(5)), new Prng(6), 5000, 4, 10);
  const picks = 5000 * 4;
  for (const endpoint of endpoints) {
    const share = (run.picksById.get(endpoint.id) ?? 0) / picks;
    assert.ok(Math.abs(share - endpoint.weight / 5) < 0.05, `${endpoint.id}: share ${share.toFixed(3)} for weight ${endpoint.weight}/5`);
  }
});

test("p2c: two distinct endpoints are compared; the less loaded per unit of weight wins", () => {
  const picker = new PowerOfTwoPicker(endpointsOf(2), new Prng(3));
  picker.onStart("e0");
  for (let i = 0; i < 50; i++) assert.equal(picker.pick()!.id, "e1");
  const weighted = new PowerOfTwoPicker(endpointsOf(2, [4, 1]), new Prng(3));
  for (let i = 0; i < 4; i++) weighted.onStart("e0"); // (4 + 1) / 4 > (0 + 1) / 1
  for (let i = 0; i < 50; i++) assert.equal(weighted.pick()!.id, "e1");
  assert.equal(new PowerOfTwoPicker([], new Prng(1)).pick(), null);
  assert.equal(new PowerOfTwoPicker(endpointsOf(1), new Prng(1)).pick()!.id, "e0");
});
