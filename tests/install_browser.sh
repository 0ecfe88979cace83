#!/usr/bin/env bash
# Debian's headless Chromium and its chromedriver, which the upload page's
# end-to-end tests drive (tests/test_serve.py). Does nothing when both are there.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium and chromium-driver for the browser tests" >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium chromium-driver >/dev/null
