# DRAFT: not built or tested yet (the shipping issue builds and tests it).
# Pass another base with --build-arg NODE_IMAGE=... where node:24 cannot be pulled.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM ${NODE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends openssl ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/padlock
COPY package.json package-lock.json ./
# The base image brings Node 24; skip the npm "node" package in the runtime image.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && rm -rf node_modules/node node_modules/.bin/node
COPY --from=build /src/dist ./dist
COPY bin ./bin
ENV PADLOCK_CONFIG_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["/opt/padlock/bin/padlock"]
CMD ["--help"]
