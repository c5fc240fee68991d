/**
 * The node's client listener, HTTP or HTTPS, with the limits of limits.ts around the API's
 * handler: receive deadlines on the server, a connection bound on the listening socket (the
 * TCP one in front of HTTPS), and admission in front of every request.
 */
import { createServer } from "node:http";
import type { Registry } from "prom-client";
import { createHttpsListener, type ApiListener } from "../tls/https-listener.js";
import type { TlsSource } from "../tls/material.js";
import { configureApiServer, httpApiHandler, type HttpApiOptions, type KvService } from "./http-api.js";
import { Admission, admitRequests, API_SERVER_OPTIONS, limitConnections, LimitMetrics, type ClientLimits } from "./limits.js";

export function createApiListener(service: KvService, options: HttpApiOptions & { readonly clientLimits: ClientLimits; readonly tls: TlsSource | null; readonly registry: Registry }): ApiListener {
  const limits = options.clientLimits;
  const admission = new Admission(limits, options.requestBodyBytesMax);
  const metrics = new LimitMetrics(options.registry, () => admission.inflight);
  const handler = admitRequests(httpApiHandler(service, options), admission, limits, metrics);
  if (options.tls !== null) {
    const listener = createHttpsListener(handler, options.tls, (server) => configureApiServer(server, limits));
    limitConnections(listener.tcp, limits.connectionsMax, metrics);
    return listener;
  }
  const server = createServer(API_SERVER_OPTIONS, handler);
  configureApiServer(server, limits);
  limitConnections(server, limits.connectionsMax, metrics);
  return server;
}
