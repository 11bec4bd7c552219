# padlock: ACME certificates and a Docker-aware HTTPS reverse proxy.
#
#   docker build -t padlock .
#   docker run -d --name padlock -p 80:80 -p 443:443 -v padlock-data:/data \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e PADLOCK_EMAIL=you@example.com -e PADLOCK_AGREE_TOS=true padlock
#   docker run --rm -p 80:80 -v padlock-data:/data padlock issue -d example.com --email you@example.com --agree-tos
#
# See docs/IMAGE.md: the build context, the non-root user and ports 80/443,
# the Docker socket, /data, the health check, and building without a registry.
#
# NODE_IMAGE is any Debian-based image with Node 24 and npm on PATH (the
# official node:24 images: node and npm in /usr/local). openssl, ca-certificates
# and setcap (libcap2-bin) are installed with apt only when the base lacks
# them, so a base that already has them builds with no network at all.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript, bundle the CLI (dist/app/), then keep the production dependencies only ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# The context (see .dockerignore) carries node_modules when `npm ci` was run
# in the checkout: then nothing is downloaded here. Without it, npm ci fetches
# the locked dependencies from the registry. The npm package "node" (the
# project's own Node 24 for checkouts, left out of the context) is dropped
# from package.json before the prune: the base image brings Node.
COPY . .
RUN set -eu; \
    if [ ! -d node_modules ]; then npm ci --no-audit --no-fund --ignore-scripts; fi; \
    rm -rf dist; \
    node node_modules/typescript/bin/tsc -p tsconfig.json; \
    node scripts/bundle.mjs; \
    npm pkg delete dependencies.node; \
    npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund; \
    find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete; \
    mkdir -p /out/opt/padlock; \
    mv package.json package-lock.json bin dist node_modules /out/opt/padlock/; \
    /out/opt/padlock/bin/padlock --version

# ---- runtime ----
# Metadata first and the big layers last: the classic builder commits a layer
# for every instruction, which costs a copy of the image with the vfs driver.
FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="padlock" \
      org.opencontainers.image.description="ACME certificates (Let's Encrypt or any ACME CA) and a Docker-aware HTTPS reverse proxy" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/IMAGE.md in the padlock repository"
ENV PADLOCK_CONFIG_DIR=/data \
    NODE_ENV=production
EXPOSE 80 443
# /healthz on the admin listener (PADLOCK_ADMIN_LISTEN, default 127.0.0.1:9180),
# with node itself. Set the address through PADLOCK_ADMIN_LISTEN (not
# --admin-listen) so the check finds it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const a=process.env.PADLOCK_ADMIN_LISTEN||'127.0.0.1:9180',i=a.lastIndexOf(':');let h=a.slice(0,i).replace('[','').replace(']','');if(h===''||h==='0.0.0.0')h='127.0.0.1';if(h==='::')h='::1';require('http').get({host:h,port:Number(a.slice(i+1)),path:'/healthz',timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["padlock"]
CMD ["run"]
# - openssl (padlock verifies every chain with it) and ca-certificates (the system trust store);
# - CAP_NET_BIND_SERVICE as a file capability on node, so the non-root user binds 80 and 443
#   with Docker's default capabilities, on the host network too;
# - user padlock (10001:10001), /data owned by it and 0700, and padlock on PATH.
RUN set -eu; \
    need=""; \
    command -v openssl >/dev/null 2>&1 || need="$need openssl"; \
    [ -s /etc/ssl/certs/ca-certificates.crt ] || need="$need ca-certificates"; \
    command -v setcap >/dev/null 2>&1 || need="$need libcap2-bin"; \
    if [ -n "$need" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")"; \
    groupadd --gid 10001 padlock; \
    useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin padlock; \
    mkdir -p /data; \
    chown 10001:10001 /data; \
    chmod 0700 /data; \
    ln -s /opt/padlock/bin/padlock /usr/local/bin/padlock
VOLUME ["/data"]
USER 10001:10001
COPY --from=build /out/opt/padlock /opt/padlock
