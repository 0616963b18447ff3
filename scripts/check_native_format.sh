#!/usr/bin/env bash
# Checks that native/ is formatted by .clang-format (`npm run format` fixes it). Part of `npm run lint`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v clang-format >/dev/null; then
  echo "check_native_format: clang-format is not installed (scripts/setup.sh installs it: apt-get install clang-format)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files 'native/*.cc' 'native/*.h' 'native/*.cu' 'native/*.cuh')
clang-format --dry-run --Werror "${files[@]}"
echo "check_native_format: ${#files[@]} files formatted ($(clang-format --version | head -1))"
