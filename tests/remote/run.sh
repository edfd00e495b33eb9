#!/usr/bin/env bash
# The object-store suite: starts a 3-node Garage cluster on loopback (3
# copies of every object), runs the ignored Garage tests of `--test remote`
# against it, and always stops the cluster.
#
# The Garage binary is installed once with cargo into
# $MMBLOB_GARAGE_ROOT (default ~/.cache/mmblob-tools/garage-2.5.0) and reused.
# Set MMBLOB_GARAGE_KEEP=1 to keep the cluster's directory and logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

GARAGE_VERSION=2.5.0
garage_root="${MMBLOB_GARAGE_ROOT:-$HOME/.cache/mmblob-tools/garage-$GARAGE_VERSION}"
garage="$garage_root/bin/garage"
if ! [ -x "$garage" ] || ! "$garage" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
    echo "run.sh: installing garage $GARAGE_VERSION into $garage_root (once; about 10-20 minutes)"
    cargo install garage --version "$GARAGE_VERSION" --locked --root "$garage_root"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mmblob-garage.XXXXXX")
cleanup() {
    local status=$?
    for n in 1 2 3; do
        if [ -f "$work/n$n/pid" ]; then
            kill "$(cat "$work/n$n/pid")" 2>/dev/null || true
        fi
    done
    for n in 1 2 3; do
        if [ -f "$work/n$n/pid" ]; then
            local pid
            pid=$(cat "$work/n$n/pid")
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [ "$status" != 0 ]; then
        for n in 1 2 3; do
            echo "== garage node $n log (tail)" >&2
            tail -n 20 "$work/n$n/log" >&2 2>/dev/null || true
        done
    fi
    if [ "${MMBLOB_GARAGE_KEEP:-}" = 1 ]; then
        echo "run.sh: cluster files kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
used=" "
pick_port() { # sets $port to a free loopback port not picked before
    while :; do
        port=$((20000 + RANDOM % 40000))
        case "$used" in *" $port "*) continue ;; esac
        if port_free "$port"; then
            used="$used$port "
            return
        fi
    done
}

secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
for n in 1 2 3; do
    dir="$work/n$n"
    mkdir -p "$dir/meta" "$dir/data"
    pick_port
    rpc=$port
    pick_port
    s3=$port
    sed -e "s|@DIR@|$dir|g" -e "s|@RPC_PORT@|$rpc|g" -e "s|@S3_PORT@|$s3|g" \
        -e "s|@SECRET@|$secret|g" tests/remote/garage.toml.in >"$dir/garage.toml"
    echo "$s3" >"$dir/s3_port"
    start="\"$garage\" -c \"$dir/garage.toml\" server >>\"$dir/log\" 2>&1 & echo \$! >\"$dir/pid\""
    echo "$start" >"$dir/start"
    sh -c "$start"
done
g() { "$garage" -c "$work/n1/garage.toml" "$@"; }

retry() { # retry SECONDS COMMAND...: until it succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "run.sh: gave up waiting for: $*" >&2
            "$@" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

for n in 1 2 3; do
    retry 60 "$garage" -c "$work/n$n/garage.toml" status
done
ids=()
for n in 1 2 3; do
    ids+=("$("$garage" -c "$work/n$n/garage.toml" node id -q 2>/dev/null | tail -n 1)")
done
g node connect "${ids[1]}" >/dev/null
g node connect "${ids[2]}" >/dev/null
for id in "${ids[@]}"; do
    retry 30 g layout assign -z dc1 -c 1G "${id%@*}"
done
g layout apply --version 1 >/dev/null
retry 60 g bucket create mmblob-test
key_out=$(g key create mmblob-test-key)
key_id=$(echo "$key_out" | sed -n 's/^Key ID: *//p' | head -n 1)
key_secret=$(echo "$key_out" | sed -n 's/^Secret key: *//p' | head -n 1)
if [ -z "$key_id" ] || [ -z "$key_secret" ]; then
    echo "run.sh: could not read the key from: $key_out" >&2
    exit 1
fi
g bucket allow --read --write --owner mmblob-test --key mmblob-test-key >/dev/null
echo "run.sh: 3-node Garage cluster up (S3 on 127.0.0.1:$(cat "$work/n1/s3_port"))"

export AWS_ACCESS_KEY_ID="$key_id"
export AWS_SECRET_ACCESS_KEY="$key_secret"
export AWS_REGION=garage
export AWS_ENDPOINT_URL="http://127.0.0.1:$(cat "$work/n1/s3_port")"
export AWS_ALLOW_HTTP=true
export MMBLOB_GARAGE=1
export MMBLOB_GARAGE_BUCKET=mmblob-test
export MMBLOB_GARAGE_NODE3_PIDFILE="$work/n3/pid"
export MMBLOB_GARAGE_NODE3_START
MMBLOB_GARAGE_NODE3_START=$(cat "$work/n3/start")

# Release build: the suite moves gigabytes through checksums.
# One test at a time: one of them stops and restarts node 3.
cargo test --release --test remote -- --ignored --test-threads=1 "$@"

if [ -n "${MMBLOB_REMOTE_BENCH:-}" ]; then
    MMBLOB_BENCH_URL="s3://mmblob-test/bench" \
        cargo run --release -p mmblob-remote --example remote_bench -- ${MMBLOB_REMOTE_BENCH}
fi
