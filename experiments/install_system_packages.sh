#!/usr/bin/env bash
# Installs the Debian packages the project uses, only when they are missing (idempotent).
set -euo pipefail
need=()
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
[ -d /usr/share/games/fortunes ] || need+=(fortunes)
command -v bible >/dev/null 2>&1 || need+=(bible-kjv)
[ -f /usr/share/common-licenses/GPL-3 ] || need+=(base-files)
# Technical-prose corpus (clone.data techprose): the Python 3.11 documentation as HTML.
[ -d /usr/share/doc/python3.11/html/library ] || need+=(python3.11-doc)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
