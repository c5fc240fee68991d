import assert from "node:assert/strict";
import { test } from "node:test";
import { Fifo } from "./fifo.js";

test("Fifo: first in, first out across its compactions, as an array's push and shift would be", () => {
  const fifo = new Fifo<number>();
  const reference: number[] = [];
  let next = 0;
  // Bursts of pushes and shifts of varied sizes, enough to compact many times.
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < (round * 37) % 3000; i++) {
      fifo.push(next);
      reference.push(next++);
    }
    for (let i = 0; i < (round * 53) % 3100; i++) assert.equal(fifo.shift(), reference.shift());
    assert.equal(fifo.length, reference.length);
    assert.equal(fifo.peek(), reference[0]);
  }
  assert.deepEqual(fifo.toArray(), reference);
  fifo.clear();
  assert.equal(fifo.length, 0);
  assert.equal(fifo.shift(), undefined);
  assert.equal(fifo.peek(), undefined);
});
