/*
 * walbuf.c - a VFS over SQLite's default one that gathers a WAL's writes
 * into one pwrite.
 *
 * SQLite writes a commit's WAL frames one by one, each in two pwrite
 * calls (its 24-byte header, then the page), all at consecutive offsets,
 * and then syncs the file. This VFS keeps the consecutive writes to a WAL
 * file in a buffer and writes them with one pwrite when anything else
 * touches the file: a sync (the commit's), a read, a truncate, a size, a
 * lock change, a file control, the close. Other files (the database, its
 * journal) go straight through.
 *
 * Invariants:
 *   W1. A write reaches the file before any operation on the same file that
 *       could observe it, or make it durable, returns: every method but
 *       xWrite (and xShm*, which touch the -shm file) flushes first. So a
 *       sync still covers every frame written before it, and the writer's
 *       own reads of a frame it spilled find it.
 *   W2. Other connections (readers) read the WAL through their own file
 *       handles, and only up to the frames of the wal-index, which the writer
 *       updates after the commit's sync (synchronous=FULL: sqlite3WalFrames
 *       syncs before walIndexAppend): by then the buffer is empty (W1).
 *   W3. A failed flush is the error of the method that flushed: a commit
 *       whose frames could not be written fails (its sync reports it), as it
 *       would have at its pwrite.
 *
 * Measured (docs/implementation/database_optimization.md, "One write a
 * commit"): with 16 KiB pages, bench engine's 32,000 pwrite calls for
 * 20,000 workflows become one per commit.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "walbuf.h"

/* Writes beyond this are flushed first (a commit of 100 workflows is about
 * 1 MiB of frames). */
#define WB_CAP (8 << 20)

struct wb_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, allocated after this */
    int wal;
    char *buf;
    int len, cap;
    sqlite3_int64 off; /* where buf[0] goes */
};

static sqlite3_vfs *wb_root;

/* The unix VFS writes at most 0x1ffff bytes a call (seekAndWrite masks the
 * count with it: it expects a page at most), so the buffer goes in pieces
 * of WB_PIECE: a 1 MiB commit in 9 pwrite calls rather than 128. */
#define WB_PIECE (120 << 10)

static int wb_flush(struct wb_file *f)
{
    int rc = SQLITE_OK;
    for (int at = 0; at < f->len && rc == SQLITE_OK; at += WB_PIECE) {
        int n = f->len - at < WB_PIECE ? f->len - at : WB_PIECE;
        rc = f->real->pMethods->xWrite(f->real, f->buf + at, n, f->off + at);
    }
    f->len = 0;
    return rc;
}

#define REAL(p) (((struct wb_file *)(p))->real)
/* W1: flushed before the call; a flush error is the call's (W3) */
#define FLUSHED(p)                                                                                 \
    do {                                                                                           \
        int frc = wb_flush((struct wb_file *)(p));                                                 \
        if (frc != SQLITE_OK)                                                                      \
            return frc;                                                                            \
    } while (0)

static int wb_close(sqlite3_file *p)
{
    struct wb_file *f = (struct wb_file *)p;
    int rc = wb_flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *p, void *out, int n, sqlite3_int64 off)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xRead(REAL(p), out, n, off);
}

/* What is buffered, then this write: a write that does not go in the
 * buffer (W1, W3). */
static int wb_write_through(struct wb_file *f, const void *data, int n, sqlite3_int64 off)
{
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, n, off);
}

static int wb_write(sqlite3_file *p, const void *data, int n, sqlite3_int64 off)
{
    struct wb_file *f = (struct wb_file *)p;
    if (!f->wal || n >= WB_CAP)
        return wb_write_through(f, data, n, off);
    if (f->len > 0 && (off != f->off + f->len || f->len + n > WB_CAP)) {
        int rc = wb_flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (f->len == 0)
        f->off = off;
    if (f->len + n > f->cap) {
        int cap = f->cap ? f->cap : 1 << 16;
        while (cap < f->len + n)
            cap *= 2;
        char *nb = realloc(f->buf, (size_t)cap);
        if (!nb) /* no room: straight to the file */
            return wb_write_through(f, data, n, off);
        f->buf = nb;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, (size_t)n);
    f->len += n;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xTruncate(REAL(p), size);
}

static int wb_sync(sqlite3_file *p, int flags)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xSync(REAL(p), flags);
}

static int wb_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xFileSize(REAL(p), size);
}

static int wb_lock(sqlite3_file *p, int lock)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xLock(REAL(p), lock);
}

static int wb_unlock(sqlite3_file *p, int lock)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xUnlock(REAL(p), lock);
}

static int wb_check_reserved(sqlite3_file *p, int *out)
{
    return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out);
}

static int wb_file_control(sqlite3_file *p, int op, void *arg)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xFileControl(REAL(p), op, arg);
}

static int wb_sector_size(sqlite3_file *p)
{
    return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int wb_device(sqlite3_file *p)
{
    return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

static int wb_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **out)
{
    return REAL(p)->pMethods->xShmMap(REAL(p), pg, pgsz, extend, out);
}

static int wb_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    return REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *p)
{
    REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int wb_shm_unmap(sqlite3_file *p, int del)
{
    return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}

static int wb_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
    FLUSHED(p);
    return REAL(p)->pMethods->xFetch(REAL(p), off, n, out);
}

static int wb_unfetch(sqlite3_file *p, sqlite3_int64 off, void *page)
{
    return REAL(p)->pMethods->xUnfetch(REAL(p), off, page);
}

/* Version 3 methods: the unix VFS's files are version 3; a method the real
 * file lacks is never called, as SQLite checks iVersion first. */
static const sqlite3_io_methods wb_io = {
    3,
    wb_close,
    wb_read,
    wb_write,
    wb_truncate,
    wb_sync,
    wb_file_size,
    wb_lock,
    wb_unlock,
    wb_check_reserved,
    wb_file_control,
    wb_sector_size,
    wb_device,
    wb_shm_map,
    wb_shm_lock,
    wb_shm_barrier,
    wb_shm_unmap,
    wb_fetch,
    wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out_flags)
{
    struct wb_file *f = (struct wb_file *)p;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    int rc = wb_root->xOpen(wb_root, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        /* SQLite calls no method of a file whose open failed */
        f->base.pMethods = NULL;
        return rc;
    }
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->base.pMethods = &wb_io;
    return SQLITE_OK;
}

/* The rest is the default VFS's, called through it. */
static int wb_delete(sqlite3_vfs *v, const char *name, int sync)
{
    return wb_root->xDelete(wb_root, name, sync);
}

static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return wb_root->xAccess(wb_root, name, flags, out);
}

static int wb_full_path(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return wb_root->xFullPathname(wb_root, name, n, out);
}

static void *wb_dl_open(sqlite3_vfs *v, const char *name)
{
    return wb_root->xDlOpen(wb_root, name);
}

static void wb_dl_error(sqlite3_vfs *v, int n, char *out)
{
    wb_root->xDlError(wb_root, n, out);
}

static void (*wb_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return wb_root->xDlSym(wb_root, h, sym);
}

static void wb_dl_close(sqlite3_vfs *v, void *h)
{
    wb_root->xDlClose(wb_root, h);
}

static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
    return wb_root->xRandomness(wb_root, n, out);
}

static int wb_sleep(sqlite3_vfs *v, int us)
{
    return wb_root->xSleep(wb_root, us);
}

static int wb_current_time(sqlite3_vfs *v, double *out)
{
    return wb_root->xCurrentTime(wb_root, out);
}

static int wb_last_error(sqlite3_vfs *v, int n, char *out)
{
    return wb_root->xGetLastError(wb_root, n, out);
}

static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return wb_root->xCurrentTimeInt64(wb_root, out);
}

static sqlite3_vfs wb_vfs = {
    .iVersion = 2,
    .zName = WALBUF_VFS,
    .xOpen = wb_open,
    .xDelete = wb_delete,
    .xAccess = wb_access,
    .xFullPathname = wb_full_path,
    .xDlOpen = wb_dl_open,
    .xDlError = wb_dl_error,
    .xDlSym = wb_dl_sym,
    .xDlClose = wb_dl_close,
    .xRandomness = wb_randomness,
    .xSleep = wb_sleep,
    .xCurrentTime = wb_current_time,
    .xGetLastError = wb_last_error,
    .xCurrentTimeInt64 = wb_current_time64,
};

int walbuf_register(void)
{
    wb_root = sqlite3_vfs_find(NULL);
    if (!wb_root)
        return SQLITE_ERROR;
    wb_vfs.mxPathname = wb_root->mxPathname;
    wb_vfs.szOsFile = (int)sizeof(struct wb_file) + wb_root->szOsFile;
    return sqlite3_vfs_register(&wb_vfs, 0);
}
