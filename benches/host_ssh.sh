#!/usr/bin/env bash
# Benchmark: cordon serve against a throwaway OpenSSH sshd on loopback, in one run.
# Installs openssh-server if missing (needs root: sshd runs as root, started and stopped here).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/sshd ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq openssh-server >/dev/null
fi
exec cargo bench --bench host_ssh
