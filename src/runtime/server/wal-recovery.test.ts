/**
 * Damage to a node's write-ahead log, on real processes: a torn tail (what a crash in the
 * middle of a write leaves) is repaired and the node rejoins; a flipped byte in the middle
 * of an older segment (damage to data that was durable) makes the node refuse to start,
 * naming the file and the offset.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CONSENSUS_UNDER_TEST, ProcessCluster, request, sleep } from "./process-cluster.test-util.js";
import { WAL_SEGMENT_HEADER_BYTES } from "../storage/wal.js";

function segments(dataDir: string): string[] {
  const dir = join(dataDir, "wal");
  return readdirSync(dir)
    .filter((name) => /^\d{16}\.wal$/.test(name))
    .sort()
    .map((name) => join(dir, name));
}

/** Where the record at `offset` ends. */
function recordEnd(bytes: Buffer, offset: number): number {
  return offset + 8 + bytes.readUInt32LE(offset);
}

/**
 * Offsets of each record in a segment: u32 LE length | u32 CRC | payload; zeros end it. A
 * segment after the first begins with a header (length field 0xffffffff), not a record.
 */
function recordOffsets(path: string): number[] {
  const bytes = readFileSync(path);
  const offsets: number[] = [];
  let offset = bytes.length >= 4 && bytes.readUInt32LE(0) === 0xffffffff ? WAL_SEGMENT_HEADER_BYTES : 0;
  while (offset + 8 <= bytes.length) {
    const length = bytes.readUInt32LE(offset);
    if (length === 0) break;
    offsets.push(offset);
    offset += 8 + length;
  }
  return offsets;
}

for (const consensus of CONSENSUS_UNDER_TEST) {
  describe(`write-ahead log damage on real nodes (${consensus})`, { timeout: 90_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3, flags: ["--wal-segment-bytes", "65536"] });
      await cluster.waitForLeader();
      // About 600 KiB of log: several 64 KiB segments on every node. Ten writes at a time:
      // one at a time, each waiting for its own round of fsyncs, took Paxos 6 s.
      const value = "x".repeat(2000);
      for (let from = 0; from < 300; from += 10) {
        const answers = await Promise.all(Array.from({ length: 10 }, (_, k) => request("PUT", `${cluster.node(((from + k) % 3) + 1).http}/v1/kv/wal-${from + k}`, value)));
        for (const answer of answers) assert.equal(answer.status, 200, answer.text);
      }
    });
    after(async () => cluster.close());

    test("a torn tail is truncated with a log line, and the node catches up", async () => {
      const leader = await cluster.waitForLeader();
      const victim = leader === 3 ? 2 : 3;
      await cluster.kill(victim);
      const files = segments(cluster.node(victim).dataDir);
      assert.ok(files.length >= 3, `expected several segments, found ${files.length}`);
      const last = files[files.length - 1] as string;
      const offsets = recordOffsets(last);
      assert.ok(offsets.length > 0, "the last segment holds records");
      // What a crash in the middle of a write leaves: after the last record that was made
      // durable, the start of one that was not — its header and a few bytes of its payload —
      // and the segment's zeros after. (The last whole record may be an applied entry: it was
      // durable before it applied, and no crash can tear it.)
      const bytes = readFileSync(last);
      const end = recordEnd(bytes, offsets[offsets.length - 1] as number);
      const torn = Buffer.alloc(8 + 2);
      torn.writeUInt32LE(2068, 0);
      torn.writeUInt32LE(0xdeadbeef, 4);
      torn.write("ab", 8);
      torn.copy(bytes, end);
      writeFileSync(last, bytes);
      cluster.startNode(victim);
      const deadline = Date.now() + 15_000;
      let read = await request("GET", `${cluster.node(victim).http}/v1/kv/wal-299?consistency=linearizable`);
      while (read.status !== 200 && Date.now() < deadline) {
        await sleep(100);
        read = await request("GET", `${cluster.node(victim).http}/v1/kv/wal-299?consistency=linearizable`);
      }
      assert.equal(read.status, 200, `the repaired node serves again: ${read.text}\n${cluster.node(victim).output.slice(-3000)}`);
      assert.match(cluster.node(victim).output, /truncat/i, "the repair is logged");
      for (let i = 0; i < 300; i += 37) {
        const answer = await request("GET", `${cluster.node(victim).http}/v1/kv/wal-${i}?consistency=stale`);
        assert.equal(answer.status, 200, `wal-${i} on the repaired node`);
      }
    });

    test("a corrupt byte in the middle of an older segment refuses to start, naming the file and offset", async () => {
      const leader = await cluster.waitForLeader();
      const victim = [1, 2, 3].find((id) => id !== leader) as number;
      await cluster.kill(victim);
      const files = segments(cluster.node(victim).dataDir);
      const older = files[0] as string;
      const offsets = recordOffsets(older);
      const target = offsets[Math.floor(offsets.length / 2)] as number;
      const bytes = readFileSync(older);
      bytes[target + 8 + 3] = (bytes[target + 8 + 3] as number) ^ 0xff; // inside the payload: the CRC fails
      writeFileSync(older, bytes);
      cluster.startNode(victim);
      const { code, signal, output } = await cluster.exited(victim, 15_000);
      assert.equal(code, 1, `the node refuses to start (exit code ${code}, signal ${signal}): ${output.slice(-2000)}`);
      assert.ok(output.includes(older.split("/").pop() as string), `the message names the file: ${output.slice(-2000)}`);
      assert.match(output, /corrupt/i);
      assert.match(output, new RegExp(`byte ${target}\\b`), "the message names the offset");
      // The other two still serve.
      const survivors = [1, 2, 3].filter((id) => id !== victim);
      const write = await request("PUT", `${cluster.node(survivors[0] as number).http}/v1/kv/after-corruption`, "ok");
      assert.equal(write.status, 200);
    });
  });
}
