#!/usr/bin/env bash
# From a fresh clone to executed notebooks: system packages, npm packages, the build, the
# Jupyter kernel, then every notebook (executed copies and HTML land in reports/notebooks/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
npm ci
npm run kernel:install
npm run notebooks -- "$@"
