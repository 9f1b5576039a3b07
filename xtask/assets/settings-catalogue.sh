#!/usr/bin/env bash
# Prints PostgreSQL's settings catalogue as tab-separated rows:
#   name context vartype unit min max enumvals described
# from a throwaway server started in a temporary folder (pg_settings: units
# and enum values) and `postgres --describe-config` (described = 1 when it
# lists the setting: the ones meant for postgresql.conf). Runs as a
# non-root user inside the project's image; changes nothing outside $TMPDIR.
set -euo pipefail
# The image puts its major's programs on PATH (ENV PATH).
work=$(mktemp -d)
trap 'pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
initdb -D "$work/data" -A trust -U postgres >/dev/null
postgres --describe-config | cut -f1 | sort -u >"$work/described"
pg_ctl -D "$work/data" -o "-c listen_addresses= -k $work" -w start >/dev/null
echo "# major $(postgres --version | sed -E 's/.* ([0-9]+)\..*/\1/')"
psql -h "$work" -U postgres -d postgres -X -A -t -F $'\t' -c "
  SELECT name, context, vartype, coalesce(unit, ''), coalesce(min_val, ''),
         coalesce(max_val, ''), coalesce(array_to_string(enumvals, ','), '')
  FROM pg_settings ORDER BY name" |
while IFS= read -r row; do
    name=${row%%$'\t'*}
    if grep -qx -- "$name" "$work/described"; then d=1; else d=0; fi
    printf '%s\t%s\n' "$row" "$d"
done
