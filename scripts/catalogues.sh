#!/bin/sh
# Translations of the patron pages (#21): extract, update and check the gettext catalogues.
#   sh scripts/catalogues.sh extract   # proxy/locales/messages.pot from templates and N_() marks
#   sh scripts/catalogues.sh update    # merge new messages into every <lang>/LC_MESSAGES/messages.po
#   sh scripts/catalogues.sh check     # every message translated (tests/web/test_i18n.py too)
# No .mo files: proxy/web/i18n.py compiles each .po in memory at start-up (docs/customising.md).
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
POT=proxy/locales/messages.pot
case "${1:-}" in
  extract)
    "$PY" -m babel.messages.frontend extract -F proxy/locales/babel.cfg -k _ -k N_ \
      --no-location --sort-output --project=clamshell --copyright-holder="clamshell authors" \
      -o "$POT" . ;;
  update)
    "$PY" -m babel.messages.frontend update -i "$POT" -d proxy/locales -D messages \
      --no-fuzzy-matching --ignore-obsolete ;;
  check)
    "$PY" -c "from proxy.web.i18n import untranslated; import sys; bad = untranslated(); \
print('\n'.join(bad) or 'every message is translated'); sys.exit(1 if bad else 0)" ;;
  *)
    echo "usage: sh scripts/catalogues.sh extract|update|check" >&2; exit 2 ;;
esac
