#!/bin/sh
# Headless Chromium + chromedriver from the distribution's packages, for the browser tests.
# Idempotent: does nothing when both are already installed. Debian/Ubuntu only (apt-get).
set -eu

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

if [ -x "$CHROMIUM" ] && [ -x "$DRIVER" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: need $CHROMIUM and $DRIVER; apt-get is not available, install Chromium and its driver by hand" >&2
    exit 1
fi

# Non-interactive: the test run must never stop at a prompt (tzdata, service restarts).
export DEBIAN_FRONTEND=noninteractive
INSTALL="apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver"

if [ "$(id -u)" -eq 0 ]; then
    sh -c "$INSTALL"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n env DEBIAN_FRONTEND=noninteractive sh -c "$INSTALL"
else
    echo "install_browser: Chromium is missing and this user cannot install packages without a password." >&2
    echo "Run once as root:  apt-get install -y chromium chromium-driver" >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ] || [ ! -x "$DRIVER" ]; then
    echo "install_browser: packages installed but $CHROMIUM or $DRIVER is still missing" >&2
    exit 1
fi
