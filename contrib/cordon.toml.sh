#!/usr/bin/env sh
# Prints the configuration file install.sh puts at /etc/cordon/cordon.toml: docs/config.md's
# reference, every line commented out, so that the file changes nothing until a line is
# uncommented (cordon reads /etc/cordon/cordon.toml as root without being told; --config or
# $CORDON_CONFIG name another). tests/docs.rs starts the host with what this prints.
set -eu
cd "$(dirname "$0")/.."
cat <<'HEAD'
# cordon serve's configuration (man 5 cordon.toml, docs/config.md).
# Every line below is commented out: cordon's defaults apply. Uncomment a line to change it;
# `systemctl restart cordon` (or restarting `cordon serve`) reads it again.

HEAD
sed -n '/^```toml$/,/^```$/p' docs/config.md | sed '1d;$d' | sed 's/^/# /'
