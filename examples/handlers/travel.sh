#!/bin/sh
# travel.sh - a worker command for examples/complex_workflow.yaml.
#   travel.sh book KIND   reads {"trip": ...} on stdin, prints {"booking": ID}
#   travel.sh cancel      reads {"booking": ID} on stdin, prints {"cancelled": ID}
# Each call appends one line to $TRAVEL_LOG (default /dev/null), so the
# order of bookings and cancellations can be seen.
set -eu
log=${TRAVEL_LOG:-/dev/null}
input=$(cat)
case "$1" in
book)
    trip=$(printf '%s' "$input" | sed -n 's/.*"trip":"\([^"]*\)".*/\1/p')
    id="$2-$trip"
    echo "book $id" >>"$log"
    printf '{"booking": "%s"}\n' "$id"
    ;;
cancel)
    id=$(printf '%s' "$input" | sed -n 's/.*"booking":"\([^"]*\)".*/\1/p')
    echo "cancel $id" >>"$log"
    printf '{"cancelled": "%s"}\n' "$id"
    ;;
*)
    echo "travel.sh: unknown action '$1'" >&2
    exit 2
    ;;
esac
