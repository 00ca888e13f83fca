#!/bin/sh
# embed.sh NAME FILE - prints FILE as a C string constant `static const char NAME[]`.
# Used for the web page (src/api/www/index.html -> index.html.h).
set -eu
printf '/* generated from %s by scripts/embed.sh: edit that file, not this one */\n' "$2"
printf 'static const char %s[] =\n' "$1"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$2"
printf '    ;\n'
