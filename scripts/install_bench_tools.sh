#!/usr/bin/env bash
# Installs the HTTP load tool the benchmark uses (wrk, from Debian). Idempotent:
# does nothing when wrk is already on PATH. Exits 0 without wrk when apt is not
# usable (no root, no apt); the benchmark then falls back to its own Python
# load generator and says so in the report.
set -u

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_bench_tools: apt-get not found; the benchmark will use its Python load generator" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_bench_tools: not root and no passwordless sudo; the benchmark will use its Python load generator" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine; refresh them only when the install fails.
if ! $SUDO apt-get install -y -qq wrk >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || true
fi
if command -v wrk >/dev/null 2>&1; then
    echo "install_bench_tools: wrk installed" >&2
else
    echo "install_bench_tools: could not install wrk; the benchmark will use its Python load generator" >&2
fi
exit 0
