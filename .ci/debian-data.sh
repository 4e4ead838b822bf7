#!/bin/sh
# Installs the Debian packages the tests need (the first step of README's test command):
#   dataset-fashion-mnist   Fashion-MNIST's idx files, /usr/share/datasets/fashion-mnist/
#   chromium                headless Chromium, to screenshot label-issues' HTML page (tests/test_label_issues_html.py)
# As root (CI runs as root) it runs apt-get, and a failure fails the command. Without root (and
# without password-less sudo) or without apt-get it only says what to install and exits 0: the
# tests that need these packages then skip, naming them.
set -e
missing=""
for pkg in dataset-fashion-mnist chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no apt-get here; the tests that need$missing will skip (put Fashion-MNIST's idx files under \$SELFDISTILL_DATA/FashionMNIST/raw/ and chromium on PATH instead)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq$missing
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq$missing
else
  echo "note: not root; run 'sudo apt-get install$missing', or the tests that need it will skip"
fi
