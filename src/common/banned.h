/*
 * banned.h - functions wfo does not use (STYLE rule 10; git's banned.h).
 * Included last by common/compat.h, which every .c file of wfo includes
 * first: the C library's headers have declared these functions by then, and
 * a call to one in the file's own code fails to compile. Build strings with
 * struct wfo_buf (common/buf.h); parse numbers with wfo_parse_int64
 * (common/util.h) or strtol.
 */
#ifndef WFO_COMMON_BANNED_H
#define WFO_COMMON_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef gets
#define gets(x) BANNED(gets)

#endif
