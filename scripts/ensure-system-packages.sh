#!/usr/bin/env bash
# CI machines start fresh: install the Debian packages the tests drive (a browser, docker-compose),
# listed one per line in scripts/system-packages.txt. Without root or apt, say so and go on:
# the tests that need a missing tool skip with a message (CI forbids skipping them).
set -u
list="$(dirname "$0")/system-packages.txt"
[ -f "$list" ] || exit 0
missing=()
while read -r name command; do
  case "$name" in ""|\#*) continue ;; esac
  command -v "${command:-$name}" >/dev/null 2>&1 || missing+=("$name")
done < "$list"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit $?
fi
echo "not installed: ${missing[*]} (their tests will be skipped)" >&2
exit 0
