import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LoadSplitter } from "./load-split.js";

const inside = (): boolean => true;

describe("LoadSplitter", () => {
  test("a range hot for long enough is split at the key that halves its writes; not before, and not once it cools", () => {
    const splitter = new LoadSplitter({ writesPerSecond: 100, hotForMs: 3000 });
    // 200 writes a second: a hot key "k-10" taking half, the rest spread over k-00..k-19.
    const second = (start: number): void => {
      for (let i = 0; i < 100; i++) splitter.observe(["k-10"], start + i);
      for (let i = 0; i < 100; i++) splitter.observe([`k-${String(i % 20).padStart(2, "0")}`], start + 100 + i);
    };
    for (let s = 0; s < 3; s++) {
      second(s * 1000);
      assert.equal(splitter.splitKey(s * 1000 + 999, inside), null, `not yet at second ${s}`);
    }
    second(3000);
    assert.equal(splitter.rate(4000), 200);
    // Below k-10: 50 writes; k-10: 105; after: 45. Splitting at k-10 leaves 50 | 150, at k-11 155 | 45: k-10 divides best.
    assert.equal(splitter.splitKey(4000, inside), "k-10");
    // A key outside the range is never the split point: without k-10, k-09 (45 | 155) and k-11 (155 | 45) divide alike; the first is taken.
    assert.equal(splitter.splitKey(4000, (key) => key !== "k-10"), "k-09");
    // Cooled: a quiet second, and it is no longer hot.
    assert.equal(splitter.splitKey(6500, inside), null);
    assert.equal(splitter.rate(6500), 0);
  });

  test("one key taking every write gives no split point; off (0) is never hot; the keys counted a second are bounded", () => {
    const single = new LoadSplitter({ writesPerSecond: 10, hotForMs: 1000 });
    for (let s = 0; s < 3; s++) for (let i = 0; i < 50; i++) single.observe(["only"], s * 1000 + i);
    assert.equal(single.splitKey(3000, inside), null);
    const off = new LoadSplitter({ writesPerSecond: 0, hotForMs: 0 });
    for (let i = 0; i < 500; i++) off.observe([`k${i}`], i);
    assert.equal(off.splitKey(2500, inside), null);
    const bounded = new LoadSplitter({ writesPerSecond: 10, hotForMs: 1000, keysMax: 8 });
    for (let s = 0; s < 3; s++) for (let i = 0; i < 100; i++) bounded.observe([`k${String(i).padStart(3, "0")}`], s * 1000 + i);
    assert.equal(bounded.rate(3000), 100, "every write counts in the rate");
    // Only the first 8 distinct keys of a second are counted by key: the split falls among them.
    assert.equal(bounded.splitKey(3000, inside), "k004");
  });
});
