# tydra image: one image for every role; the first argument picks it
# (`master`, `node`, `dashboard`, or any other tydra command such as `deploy`).
# See docker-compose.yml for how the roles are wired together and for the
# container settings a node needs so that bubblewrap can build its sandboxes.

# The Node 20 Debian bookworm image both stages start from. Docker Hub's by default;
# scripts/compose-smoke.sh, which reaches no registry, passes a locally built stand-in
# (`--build-arg BASE_IMAGE=localhost/node:20-bookworm-slim`).
ARG BASE_IMAGE=node:20-bookworm-slim

# ---- build: compile the TypeScript with the dev dependencies -----------------
FROM ${BASE_IMAGE} AS build
WORKDIR /app

# Dependencies first, so editing a source file does not reinstall them.
# --ignore-scripts: `prepare` would run tsc before any source is here; and the
# only dependencies with an install script need it not: msgpackr-extract merely
# tries to compile a fallback that its prebuilt optional package makes
# unnecessary, and esbuild's (a build tool only) swaps its launcher for the
# platform binary its optional package already holds.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts

# Everything tsconfig.json includes (lib, queues, sandbox, bin, test, bench...)
# plus examples/; .dockerignore keeps node_modules, dist, .git and secrets out.
COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts

# ---- runtime -----------------------------------------------------------------
FROM ${BASE_IMAGE}

# bubblewrap: every task runs in its own bwrap sandbox; a node refuses to start
# without it. python3: the runtime of the example command task (examples/shout);
# inside the sandbox a task only sees /usr, so interpreters must be installed in
# the image. Bookworm's bwrap (0.8) is not setuid and has --disable-userns.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap python3 \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /app

# Only what runs: production node_modules, the compiled dist/, package.json (the
# CLI reads its version from it) and examples/ (used by `tydra dev --demo`, and
# deployable with `tydra deploy examples/hello`). Root-owned and not writable by
# the user below, so a compromised process cannot rewrite tydra itself.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/examples ./examples

# Not root: the node image's `node` user (uid 1000). bwrap then runs
# unprivileged (maps the sandbox's uid 65534 to this uid), the unmasked /proc a
# node container needs (see docker-compose.yml) stays read-only to it, and the
# package cache defaults to /home/node/.cache/tydra/packages, which it owns.
USER node

ENTRYPOINT ["node", "--max-semi-space-size=1", "--v8-pool-size=1", "dist/bin/tydra.js"]
CMD ["--help"]
