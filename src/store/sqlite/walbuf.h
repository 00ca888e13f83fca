/*
 * walbuf.h - the VFS that writes a commit's WAL frames in one pwrite
 * (walbuf.c). Only src/store/sqlite/ uses it.
 */
#ifndef WFO_STORE_SQLITE_WALBUF_H
#define WFO_STORE_SQLITE_WALBUF_H

#define WALBUF_VFS "wfo-walbuf"

/* Registers the VFS WALBUF_VFS over the default one (not as the default);
 * once, before it is named in sqlite3_open_v2. An SQLite result code. */
int walbuf_register(void);

#endif
