#!/usr/bin/env bash
# Run `npm run demo` (small district) under another Node major, taken from the npm registry, to
# check the supported-versions claim (README: Node 20.19, 22, 24). Usage: .ci/node24-demo.sh [major]
#
# The npm package `node` only installs an arch-specific package (`node-<os>-<arch>`) in a
# preinstall script; that package holds the whole Node distribution: bin/node and the headers
# under include/node. We `npm pack` it into a temp dir (nothing goes into the repo's
# node_modules), rebuild a *copy* of better-sqlite3 against those headers (its native addon
# must match the Node ABI; node-gyp needs no download with --nodedir), and run the demo from a
# temp copy of src/ whose node_modules links to the repo's, except better-sqlite3.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
MAJOR=${1:-24}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gsync-node${MAJOR}-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

os=$(node -p 'process.platform')
arch=$(node -p 'process.arch')
pkg="node-${os}-${arch}"
echo "== node ${MAJOR}: fetching ${pkg}@${MAJOR} from the npm registry"
if ! version=$(npm view "${pkg}@${MAJOR}" version --json 2>"$WORK/view.err" |
  node -e 'const v=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(Array.isArray(v)?v[v.length-1]:v)'); then
  echo "node ${MAJOR}: NOT CHECKED — cannot read ${pkg} versions from the npm registry ($(npm config get registry)):"
  grep -v 'complete log' "$WORK/view.err" | head -5
  exit 1
fi
if ! (cd "$WORK" && npm pack "${pkg}@${version}" --silent >pack.out 2>pack.err); then
  echo "node ${MAJOR}: NOT CHECKED — download of ${pkg}@${version} failed:"
  grep -v 'complete log' "$WORK/pack.err" | head -5
  exit 1
fi
mkdir -p "$WORK/node" && tar xzf "$WORK/${pkg}-${version}.tgz" -C "$WORK/node" --strip-components=1
NODE="$WORK/node/bin/node"
if [ ! -x "$NODE" ] || [ ! -f "$WORK/node/include/node/node_version.h" ]; then
  echo "node ${MAJOR}: ${pkg}@${version} has no bin/node or include/node headers"
  exit 1
fi
echo "== $("$NODE" --version) from ${pkg}@${version}"

# A copy of the app whose node_modules entries link to the repo's, except better-sqlite3.
APP="$WORK/app"
mkdir -p "$APP/node_modules"
cp -r src package.json tsconfig.json "$APP/"
for entry in "$REPO"/node_modules/* "$REPO"/node_modules/.bin; do
  name=$(basename "$entry")
  [ "$name" = better-sqlite3 ] && continue
  ln -s "$(readlink -f "$entry")" "$APP/node_modules/$name"
done
cp -r "$(readlink -f "$REPO/node_modules/better-sqlite3")" "$APP/node_modules/better-sqlite3"
rm -rf "$APP/node_modules/better-sqlite3/build"

NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
echo "== building better-sqlite3 for $("$NODE" --version) (headers from ${pkg})"
start=$(date +%s)
if ! (cd "$APP/node_modules/better-sqlite3" &&
  JOBS=2 "$NODE" "$NODE_GYP" rebuild --release --nodedir="$WORK/node" >"$WORK/gyp.log" 2>&1); then
  echo "node ${MAJOR}: building better-sqlite3 failed (last lines of node-gyp):"
  tail -20 "$WORK/gyp.log"
  exit 1
fi
echo "   built in $(($(date +%s) - start)) s"

echo "== npm run demo under $("$NODE" --version)"
cd "$APP" || exit 1
mkdir -p data
"$NODE" node_modules/tsx/dist/cli.mjs src/cli/main.ts demo --students 300 >"$WORK/demo.out" 2>"$WORK/demo.err"
rc=$?
cat "$WORK/demo.out"
if [ $rc -ne 0 ]; then
  echo "node ${MAJOR}: demo failed (exit $rc):"
  tail -20 "$WORK/demo.err"
  exit 1
fi
# The third run (nothing changed in the SIS) must report 0 writes.
if ! sed -n '/expect 0 writes/,$p' "$WORK/demo.out" | grep -Eq '^writes +0$'; then
  echo "node ${MAJOR}: the demo's third run did not report 0 writes"
  exit 1
fi
echo "node ${MAJOR}: demo ok"
