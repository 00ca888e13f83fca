/*
 * compat.h - the first header of every .c file of wfo (git's
 * git-compat-util.h): the feature macro, the system headers every file may
 * assume, and last banned.h, so that sprintf, strcpy, strcat, strtok, atoi
 * and the rest of banned.h fail to compile in every file (STYLE rule 10).
 *
 * It comes before any other #include, so every file sees the C library the
 * same way, and the headers that declare the banned functions are read
 * before banned.h turns their names into errors; a file that includes
 * <string.h> again later gets nothing new (include guards). Nothing else of
 * wfo is included here. `make check` (scripts/layers.py) checks that every
 * .c under src/ includes it first; docs/interfaces/internal.md, "The layer
 * rules".
 */
#ifndef WFO_COMMON_COMPAT_H
#define WFO_COMMON_COMPAT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the Makefile passes -D_GNU_SOURCE too */
#endif

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

#endif
