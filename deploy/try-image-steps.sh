#!/usr/bin/env bash
# The Dockerfile's build without Docker (none on the machines this was written on): its COPY lines
# into a scratch /opt/marquee, a fresh python3.11 venv standing in for the image's Python, its first
# RUN (the install and the import of the code location) as written, then the gRPC server the chart
# starts, asked for its health. The useradd RUN and the image's OS (python:3.11-slim) are not tried.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/marquee-image-XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
app=$work/opt/marquee
mkdir -p "$app"
grep -E '^COPY ' Dockerfile | while read -r _ args; do
  set -- $args
  dest=${!#}
  for src in "${@:1:$#-1}"; do
    mkdir -p "$app/$dest"
    if [ -d "$src" ]; then cp -r "$src/." "$app/$dest"; else cp "$src" "$app/$dest"; fi
  done
done
rm -rf "$app/dbt_project/target" "$app/dbt_project/logs"
find "$app" -name __pycache__ -prune -exec rm -rf {} +
python3.11 -m venv "$work/py"
export PATH="$work/py/bin:$PATH" DO_NOT_TRACK=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false PIP_NO_CACHE_DIR=1 \
  PIP_DISABLE_PIP_VERSION_CHECK=1 MARQUEE_DATA_DIR="$work/data" DAGSTER_HOME="$work/dagster_home"
mkdir -p "$DAGSTER_HOME"
run=$(awk '/^RUN /{on=1} on{sub(/^RUN /,""); line=line $0; if ($0 !~ /\\$/) {print line; exit} }' Dockerfile \
      | sed 's/\\$//; s/ \\ / /g')
echo "RUN $run"
(cd "$app" && bash -c "$run")
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$app" && exec dagster api grpc -h 127.0.0.1 -p "$port" -m pipelines.definitions) >"$work/grpc.log" 2>&1 &
server=$!
for _ in $(seq 1 90); do
  if dagster api grpc-health-check -p "$port" >/dev/null 2>&1; then
    echo "gRPC code server on port $port: healthy"; exit 0
  fi
  sleep 1
done
tail -30 "$work/grpc.log"; echo "the code server did not become healthy" >&2; exit 1
