# syntax=docker/dockerfile:1
#
# The runner's CPU image: one image for both roles, the api and the CPU worker (the compose file
# picks the command). Built from the whole workspace with the lockfile (`npm ci`), compiled with
# `npm run build`, then reinstalled without dev dependencies. Runs as the unprivileged `node` user
# (uid 1000); the app files stay root-owned and read-only to it, only /data is writable.
#
#   docker build -t relu-lstm-runner:cpu .
#   docker run --rm relu-lstm-runner:cpu node apps/worker/dist/main.js    # (needs REDIS_URL)

# Node 22 (maintenance LTS until 2027-04-30): Node 20 reached its end of life in April 2026, and the
# GPU image cannot go past 22 (Dockerfile.gpu: tfjs-node 4.22.0 calls util.isNullOrUndefined, which
# Node 23 removed), so both images run the same Node line. Move both on when a tfjs-node release
# with the fix (tensorflow/tfjs#8425, merged, unreleased) is out, before Node 22's end of life.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first: the dependency layer is rebuilt only when one of them changes. Every workspace of
# the root package.json needs its package.json here (test/compose.test.ts checks the list).
COPY package.json package-lock.json ./
COPY libs/lstm/package.json libs/lstm/
COPY libs/jobs/package.json libs/jobs/
COPY libs/client/package.json libs/client/
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    ARTIFACT_DIR=/data/artifacts \
    DATASET_DIR=/data/datasets
WORKDIR /app
COPY --from=build /app /app
# A named volume mounted on /data starts as a copy of this directory, owner included.
RUN mkdir -p /data/artifacts /data/datasets && chown -R node:node /data
USER node
EXPOSE 3000
# The api role; the worker role runs `node apps/worker/dist/main.js`.
CMD ["node", "apps/api/dist/main.js"]
