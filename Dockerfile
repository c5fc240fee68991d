# A synod node in a container (docs/operations.md). Two stages: the first builds the
# npm package exactly as `npm pack` makes it (the same files a user installs); the second
# installs only its production dependencies, pinned by the lockfile, and runs as `node`.
#
#   docker build -t synod .
#   docker run --rm -p 7001:7001 -v synod-data:/var/lib/synod synod
#
# The default command runs node 1 alone; for a cluster give `node` its own flags
# (docs/operations.md has a three-container example and the Kubernetes manifests).

FROM node:20-slim AS build
WORKDIR /src
# Dependencies first, so a change of source reuses this layer. --ignore-scripts: the
# package's own `prepare` needs the sources (copied next); lmdb and msgpackr load their
# prebuilt binaries from their platform packages without an install script.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.base.json README.md ./
COPY bin ./bin
COPY scripts ./scripts
COPY src ./src
# `npm pack` empties dist/, builds it, and keeps only what package.json's `files` lists.
RUN npm pack --pack-destination /tmp \
 && mkdir /package \
 && tar -xzf /tmp/synod-*.tgz -C /package --strip-components=1

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /opt/synod
COPY --from=build /package ./
COPY package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && mkdir -p /var/lib/synod \
 && chown node:node /var/lib/synod
USER node
VOLUME ["/var/lib/synod"]
# 7001: the HTTP API (clients, probes, /metrics); 7101: the other nodes.
EXPOSE 7001 7101
# Alive: the process answers HTTP (GET /healthz). Kubernetes uses its own probes instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:7001/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# synod stops cleanly on SIGTERM (docker stop) as PID 1: it installs its own handlers.
ENTRYPOINT ["node", "/opt/synod/bin/synod.js"]
CMD ["node", "--id", "1", "--http", "0.0.0.0:7001", "--advertise-http", "http://127.0.0.1:7001", "--peer", "0.0.0.0:7101", "--data-dir", "/var/lib/synod"]
