/*
 * failio.c - a disk that fails on demand, for the integration tests.
 *
 * Loaded into fleetd with LD_PRELOAD. While the file named by
 * $FAILIO_TRIGGER exists, fdatasync() and fsync() fail with EIO, as they
 * do when a disk goes bad under a running server; while the file named by
 * $FAILIO_FULL exists, write() to a log segment (a regular file named
 * log.*) fails with ENOSPC, as on a full disk. With $FAILIO_SLOW_READ_MS
 * set, every pread() of a log segment or snapshot first sleeps that long,
 * as a slow disk does (a test can then watch a load in progress).
 * Otherwise they are the real calls. The tests create the files at the moment they choose, so the
 * failure lands between two known requests. Only the error path the
 * kernel would take is faked: the data written before stays on disk.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int exists(const char *env)
{
    const char *path = getenv(env);
    return path && access(path, F_OK) == 0;
}

static int failing(void)
{
    return exists("FAILIO_TRIGGER");
}

/* A regular file whose name starts with prefix (a store file). */
static int is_store_file(int fd, const char *prefix)
{
    struct stat st;
    char link[64], path[4096];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    const char *base = strrchr(path, '/');
    return base && strncmp(base + 1, prefix, strlen(prefix)) == 0;
}

static int is_log_segment(int fd)
{
    return is_store_file(fd, "log.");
}

static void slow_read(int fd)
{
    const char *ms = getenv("FAILIO_SLOW_READ_MS");
    if (ms && (is_log_segment(fd) || is_store_file(fd, "snapshot.")))
        usleep((useconds_t)strtoul(ms, NULL, 10) * 1000);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    slow_read(fd);
    if (!real) real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    return real ? real(fd, buf, n, off) : (errno = ENOSYS, -1);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    slow_read(fd);
    if (!real) real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    return real ? real(fd, buf, n, off) : (errno = ENOSYS, -1);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (exists("FAILIO_FULL") && is_log_segment(fd)) {
        errno = ENOSPC;
        return -1;
    }
    if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    return real ? real(fd, buf, n) : (errno = ENOSYS, -1);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real ? real(fd) : (errno = ENOSYS, -1);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real ? real(fd) : (errno = ENOSYS, -1);
}
