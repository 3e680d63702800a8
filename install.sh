#!/usr/bin/env bash
# Build and install cordon: the binary, its man pages, shell completions (bash, zsh, fish)
# and the shipped profiles (as examples; the binary carries them). Installs the system packages cordon's tests and benchmarks use.
#
#   ./install.sh                 everything: packages, build, install
#   ./install.sh --deps-only     only the system packages and Rust components (used by .ci/run)
#   ./install.sh --prefix DIR    install under DIR (default /usr/local as root, ~/.local otherwise)
set -euo pipefail
cd "$(dirname "$0")"

deps_only=0
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deps-only) deps_only=1 ;;
    --prefix) prefix="$2"; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$prefix" ]; then
  if [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi

say() { printf 'install.sh: %s\n' "$*"; }

# System packages: git, python3 and procps are used by the tests (inside the sandbox, from
# /usr/bin); openssh-client and tmux by the SSH tests; asciinema to check exports;
# bubblewrap by the start-up benchmark; zsh and fish by the completions' tests.
packages=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/bin/python3 ] || packages+=(python3)
[ -x /usr/bin/git ] || [ -x /usr/local/bin/git ] || packages+=(git)
have ps || packages+=(procps)
have bwrap || packages+=(bubblewrap)
have gcc || packages+=(gcc libc6-dev)
have curl || packages+=(curl ca-certificates)
have openssl || packages+=(openssl)
have ssh || packages+=(openssh-client)
have tmux || packages+=(tmux)
have asciinema || packages+=(asciinema)
# zsh and fish parse their completion scripts in tests/completions.rs (bash is here already).
have zsh || packages+=(zsh)
have fish || packages+=(fish)
# An editor for sessions (the default and claude profiles allow vi, vim.tiny, nano, editor).
have vi || have nano || have vim.tiny || packages+=(nano)
# make and procps' ps: the claude and default profiles offer them.
have make || packages+=(make)
have npm || packages+=(nodejs npm)
# A system-wide Rust toolchain for sessions: their home is the user's own cordon home, so a
# toolchain in the host account's ~/.cargo is not theirs to see (tests/built_programs.rs
# runs cargo test in a session under default and claude).
[ -x /usr/bin/cargo ] || packages+=(cargo)
# PostgreSQL (Debian's package): the store's tests and tests/postgres.rs start a private
# server of their own from its programs (initdb, pg_ctl as the postgres user).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
# python3-venv: a virtualenv for schemathesis (the API's property tests).
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
  if have apt-get; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    say "installing ${packages[*]}"
    $sudo_cmd apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    say "please install: ${packages[*]} (no apt-get here)"
  fi
fi

# schemathesis from PyPI, in a virtualenv of its own (tests/api.rs runs it against the live
# OpenAPI document).
venv="$HOME/.cache/cordon/venv"
if [ ! -x "$venv/bin/st" ]; then
  say "installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check schemathesis
fi
# moto's S3-compatible server, in the same virtualenv (tests/objects.rs starts one per test
# process, with Object Lock and legal hold, for recordings in a bucket).
if [ ! -x "$venv/bin/moto_server" ]; then
  say "installing moto[server] into $venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]'
fi

# Claude Code (a native binary, about 250 MB) for the tests that start it under the claude
# profile (tests/claude.rs fails without it, naming this script); npm and node for it and
# for the profiles' npm/npx come with the system packages above.
if ! have claude; then
  say "installing Claude Code (npm @anthropic-ai/claude-code)"
  if [ "$(id -u)" -eq 0 ]; then
    npm install -g -q --no-audit --no-fund @anthropic-ai/claude-code >/dev/null
  else
    npm install -g -q --no-audit --no-fund --prefix "$HOME/.local" @anthropic-ai/claude-code >/dev/null
    say "Claude Code is in $HOME/.local/bin: put it on PATH"
  fi
fi

# The Rust toolchain, with rustfmt and clippy for .ci/run.
if ! have cargo && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if ! have cargo; then
  say "installing Rust with rustup"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if have rustup; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt >/dev/null
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy >/dev/null
fi
[ "$deps_only" -eq 1 ] && exit 0

say "building (release)"
cargo build --release --locked -q
install -d "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/man/man5" "$prefix/share/cordon/profiles"
install -m 0755 target/release/cordon "$prefix/bin/cordon"
install -m 0644 man/cordon.1 "$prefix/share/man/man1/cordon.1"
install -m 0644 man/cordon-profile.5 "$prefix/share/man/man5/cordon-profile.5"
install -m 0644 man/cordon.toml.5 "$prefix/share/man/man5/cordon.toml.5"
install -m 0644 profiles/*.toml "$prefix/share/cordon/profiles/"
# Completions made by the binary just built, from its own command line: where each shell's
# completion system looks under the prefix.
completions="$prefix/share/bash-completion/completions/cordon:bash
$prefix/share/zsh/site-functions/_cordon:zsh
$prefix/share/fish/vendor_completions.d/cordon.fish:fish"
while IFS=: read -r file shell; do
  install -d "$(dirname "$file")"
  target/release/cordon completions "$shell" > "$file.tmp"
  chmod 0644 "$file.tmp"
  mv "$file.tmp" "$file"
done <<< "$completions"
# As root: the systemd unit, with this prefix's binary, where systemd looks for a local
# package's units; and a configuration file that changes nothing until edited (the unit
# relies on cordon reading /etc/cordon/cordon.toml when it exists). An existing one is kept.
if [ "$(id -u)" -eq 0 ]; then
  install -d "$prefix/lib/systemd/system"
  sed "s#/usr/local/bin/cordon#$prefix/bin/cordon#" contrib/cordon.service > "$prefix/lib/systemd/system/cordon.service"
  chmod 0644 "$prefix/lib/systemd/system/cordon.service"
  if [ ! -e /etc/cordon/cordon.toml ]; then
    install -d -m 0755 /etc/cordon
    contrib/cordon.toml.sh > /etc/cordon/cordon.toml
    chmod 0644 /etc/cordon/cordon.toml
    say "wrote /etc/cordon/cordon.toml (every line commented: the defaults)"
  fi
  say "systemd unit: $prefix/lib/systemd/system/cordon.service (systemctl daemon-reload && systemctl enable --now cordon)"
fi
say "installed $prefix/bin/cordon"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) say "add $prefix/bin to your PATH" ;; esac
"$prefix/bin/cordon" doctor | sed -n '3,10p'
