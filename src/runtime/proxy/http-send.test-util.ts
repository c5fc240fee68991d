/** Requests as curl sends them, which `fetch` cannot: a body in chunks, or after `Expect: 100-continue`. */
import { request as httpRequest } from "node:http";

/**
 * One request through node:http: without a Content-Length the chunks go chunked; with
 * `expect: 100-continue` the body follows the server's 100 Continue (curl sends bodies over
 * 1 MiB so). Resolves with the status and the body's text.
 */
export function send(url: string, method: string, headers: Record<string, string>, chunks: readonly Uint8Array[]): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(url, { method, headers }, (response) => {
      const parts: Buffer[] = [];
      response.on("data", (part: Buffer) => parts.push(part));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(parts).toString("utf8") }));
      response.on("error", reject);
    });
    outgoing.on("error", reject);
    const write = (): void => {
      for (const chunk of chunks) outgoing.write(chunk);
      outgoing.end();
    };
    if (headers["expect"] === "100-continue") outgoing.once("continue", write);
    else write();
  });
}
