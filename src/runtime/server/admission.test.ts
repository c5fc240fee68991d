/** The admission bounds of limits.ts, counted exactly (the process tests see them only under a flood). */
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, test } from "node:test";
import { Admission } from "./limits.js";

const requestWith = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage;

describe("Admission", () => {
  test("refuses past the requests in progress, and admits again once one is released", () => {
    const admission = new Admission({ inflightRequestsMax: 2, inflightBodyBytesMax: 1000 }, 100);
    const first = admission.admit(requestWith({}));
    assert.deepEqual(admission.admit(requestWith({})), { bytes: 0 });
    assert.deepEqual(admission.admit(requestWith({})), { refused: "requests" });
    assert.ok("bytes" in first);
    admission.release(first.bytes);
    assert.deepEqual(admission.admit(requestWith({})), { bytes: 0 });
  });

  test("counts bodies by Content-Length (capped at the body limit), chunked ones at the limit, and refuses past the byte budget", () => {
    const admission = new Admission({ inflightRequestsMax: 100, inflightBodyBytesMax: 150 }, 100);
    assert.deepEqual(admission.admit(requestWith({ "content-length": "60" })), { bytes: 60 });
    assert.deepEqual(admission.admit(requestWith({ "transfer-encoding": "chunked" })), { refused: "body_bytes" });
    assert.deepEqual(admission.admit(requestWith({ "content-length": "90" })), { bytes: 90 });
    assert.deepEqual(admission.admit(requestWith({ "content-length": "1" })), { refused: "body_bytes" });
    assert.deepEqual(admission.inflight, { requests: 2, bodyBytes: 150 });
    admission.release(90);
    admission.release(60);
    assert.deepEqual(admission.admit(requestWith({ "content-length": "999999" })), { bytes: 100 }, "a declared length past the body limit counts as the limit (the route answers 413 unread)");
  });

  test("lets one body larger than the whole budget through when nothing else is received, or it could never be sent", () => {
    const admission = new Admission({ inflightRequestsMax: 100, inflightBodyBytesMax: 50 }, 100);
    assert.deepEqual(admission.admit(requestWith({ "content-length": "80" })), { bytes: 80 });
    assert.deepEqual(admission.admit(requestWith({ "content-length": "1" })), { refused: "body_bytes" });
  });
});
