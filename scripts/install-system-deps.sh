#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt that are missing.
# As root it installs them; otherwise it uses sudo when available, or prints the command.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
list="${1:-$here/apt-packages.txt}"
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | awk '{print $1}')

# A line 'name/bookworm-backports' asks for the backports version on Debian 12 (bookworm), whose
# own is too old (Mesa 22.3's lavapipe cannot run Dawn); elsewhere the distribution's own is
# recent enough and the plain name is installed.
codename="$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)"
backports=()
for i in "${!wanted[@]}"; do
  case "${wanted[$i]}" in
    */*-backports)
      suite="${wanted[$i]#*/}"
      if [ "$suite" = "${codename}-backports" ]; then backports+=("$suite"); else wanted[$i]="${wanted[$i]%%/*}"; fi
      ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "Not a Debian/Ubuntu system: install the equivalents of these yourself: ${wanted[*]}" >&2
  echo "(Jupyter with nbconvert, nbclient and ipykernel is what the notebooks need.)" >&2
  exit 0
fi

installed() { # name[/suite]: installed, and from backports when a backports suite is named
  local name="${1%%/*}" status version
  status="$(dpkg-query -W -f='${Status}|${Version}' "$name" 2>/dev/null)" || return 1
  version="${status#*|}"
  [[ "$status" == "install ok installed|"* ]] || return 1
  [[ "$1" != */*-backports ]] || [[ "$version" == *"~bpo"* ]]
}

missing=()
for p in "${wanted[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${#wanted[@]})"
  exit 0
fi

echo "system packages to install: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "Run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
for suite in $(printf '%s\n' "${backports[@]}" | sort -u); do
  if ! grep -rqs -- "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding the Debian $suite apt source (packages from it only when asked for by name/$suite)"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$suite" |
      "${sudo_cmd[@]}" tee "/etc/apt/sources.list.d/$suite.sources" >/dev/null
  fi
done
"${sudo_cmd[@]}" apt-get update -qq
# Without recommendations: on a fresh Debian 12 machine the list pulls in 325 packages this way
# and 586 with them (a database server's config, a terminal emulator, media codecs, ...), none of
# which the notebooks or tests use.
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
