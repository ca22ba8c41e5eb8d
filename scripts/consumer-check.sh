#!/usr/bin/env bash
# The package as a PostgreSQL-only user gets it: pack the tarball, install it into an empty folder
# with only `pg`, prove that no other store driver and no native build came along, typecheck a
# strict TypeScript consumer against the published types, run a master, a coreapp and a webapp
# from it on the real PostgreSQL and send a request through them, and check that a stack trace
# from the installed package points at real TypeScript lines.
#
#   bash scripts/consumer-check.sh            # DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/test
#   MC_CONSUMER_KEEP=1 bash scripts/consumer-check.sh   # keep the temp folder for a look
#
# Prints the install's package count and size (recorded in docs/installing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
work=$(mktemp -d /tmp/mc-consumer.XXXXXX)
[ -n "${MC_CONSUMER_KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
fail() { echo "consumer-check: FAIL: $*" >&2; exit 1; }
npm_q() { npm --no-audit --no-fund --loglevel=error "$@"; }

# A clean build, so no stale file from an older build ends up in the tarball (prepare rebuilds).
rm -rf dist
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -1)"
echo "== packed $(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB"
contents=$(tar -tzf "$tarball")
! grep -E '\.jsonl$|^package/(test|bench|chaos)/|test-results' <<<"$contents" || fail "the tarball holds test files or results"
grep -qx 'package/LICENSE' <<<"$contents" || fail "the tarball has no LICENSE"

app="$work/app"
mkdir -p "$app"
cd "$app"
printf '{ "name": "consumer", "private": true, "type": "module" }\n' >package.json
start=$(date +%s)
npm_q install "$tarball" pg
echo "== installed multiconnect + pg in $(($(date +%s) - start)) s"
packages=$(node -p 'Object.keys(require("./package-lock.json").packages).length - 1')
size=$(du -sk node_modules | cut -f1)
echo "== runtime install: $packages packages, $((size / 1024)) MiB ($size KiB) in node_modules"
for banned in better-sqlite3 etcd3 ioredis mysql2 @grpc/grpc-js protobufjs node-gyp prebuild-install; do
  [ ! -e "node_modules/$banned" ] || fail "$banned was installed with a PostgreSQL-only consumer"
done
native=$(find node_modules -name '*.node' -o -name binding.gyp | head -5)
[ -z "$native" ] || fail "a native build came along: $native"
echo "== no better-sqlite3, etcd3, ioredis, mysql2, gRPC, native build"

# The type checker and Node's types are the consumer's own dev tools, not the package's.
npm_q install --save-dev typescript@6.0.3 @types/node@20.19.43
cat >tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "noUncheckedIndexedAccess": true,
    "exactOptionalPropertyTypes": true,
    "skipLibCheck": false,
    "types": ["node"],
    "noEmit": true
  },
  "include": ["consumer.ts"]
}
EOF
cp "$repo/scripts/consumer/consumer.ts" consumer.ts
npx tsc -p tsconfig.json || fail "the strict consumer does not typecheck"
echo "== strict consumer typechecks (skipLibCheck off, exactOptionalPropertyTypes on)"

# Node runs the same file with its types stripped by tsc; the pg driver is the only one present.
npx tsc -p tsconfig.json --noEmit false --outDir out >/dev/null
export MC_SECRET="consumer-check-secret-$(date +%s%N)"
export MC_TABLE_PREFIX="cc_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')_"
status=0
timeout 90 node out/consumer.js || status=$?
# Drop this run's tables (its own random prefix only; nothing else in the shared database).
node --input-type=module -e '
import pg from "pg";
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
const { rows } = await client.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND left(tablename, length($1)) = $1", [process.env.MC_TABLE_PREFIX]);
for (const { tablename } of rows) await client.query(`DROP TABLE IF EXISTS "${tablename}"`);
await client.end();'
[ "$status" = 0 ] || fail "the consumer's cluster did not serve a request on PostgreSQL (exit $status)"

# A stack trace from the installed package, with source maps on, names a shipped .ts file and a
# line that exists there.
node --enable-source-maps --input-type=module -e '
import { parseConfig } from "multiconnect";
import { existsSync, readFileSync } from "node:fs";
try { parseConfig({ cluster_name: "x" }); process.exit(3); } catch (e) {
  const frames = [...e.stack.matchAll(/\((\/[^()]*node_modules\/multiconnect\/[^():]+):(\d+):\d+\)/g)];
  if (frames.length === 0) { console.error(e.stack); process.exit(1); }
  for (const [, file, line] of frames) {
    const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
    const text = lines[Number(line) - 1] ?? "";
    if (!file.endsWith(".ts") || text.trim() === "") { console.error(`bad frame ${file}:${line}`, e.stack); process.exit(1); }
    console.log(`   ${file.replace(/.*node_modules\//, "")}:${line}  ${text.trim().slice(0, 90)}`);
  }
}' || fail "stack traces from the package do not point at its TypeScript sources"
echo "== source-mapped stack trace lands on shipped .ts lines"
echo "consumer-check: ok"
