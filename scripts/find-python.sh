#!/usr/bin/env bash
# Print the path of a working Python interpreter of the version asked ("3.10", or "3.11+").
# Looks on PATH, then through pyenv, then through `uv python find`; says how to get one if none.
set -u
want="$1"

works() {  # $1 = interpreter; true when it runs and has the version asked
  "$1" - "$want" >/dev/null 2>&1 <<'PY'
import sys
want = sys.argv[1]
v = sys.version_info[:2]
if want.endswith("+"):
    ok = v >= tuple(map(int, want[:-1].split(".")))
else:
    ok = v == tuple(map(int, want.split(".")))
sys.exit(0 if ok else 1)
PY
}

if [ "$want" = "3.10" ]; then names="python3.10"; else names="python3.11 python3.12 python3.13 python3"; fi
for name in $names; do
  # A pyenv shim may exist but fail outside its pyenv version: `works` actually runs it.
  if command -v "$name" >/dev/null 2>&1 && works "$(command -v "$name")"; then
    command -v "$name"; exit 0
  fi
done
# pyenv's versions, also when only its shims (not the pyenv command) are on PATH.
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
command -v pyenv >/dev/null 2>&1 && pyenv_root="$(pyenv root)"
for candidate in $(ls -d "$pyenv_root"/versions/*/bin/python 2>/dev/null | sort -rV); do
  if works "$candidate"; then echo "$candidate"; exit 0; fi
done
if command -v uv >/dev/null 2>&1; then
  candidate=$(uv python find "${want%+}" 2>/dev/null)
  if [ -n "$candidate" ] && works "$candidate"; then echo "$candidate"; exit 0; fi
fi
if [ "$want" = "3.10" ]; then
  cat >&2 <<'MSG'
No Python 3.10 found. Rasa 3.6 (the dialogue engine) runs only on Python 3.8-3.10.
Install one, then run make again:
  with pyenv:  pyenv install 3.10
  with uv:     uv python install 3.10
  on Debian/Ubuntu: sudo apt-get install python3.10 python3.10-venv (where the release has it)
MSG
else
  echo "No Python 3.11 or newer found. Install Python >= 3.11 (pyenv install 3.11 / uv python install 3.11)." >&2
fi
exit 1
