/*
 * failio.c - a disk that fails on demand, for the integration tests.
 *
 * Loaded into fleetd with LD_PRELOAD. While the file named by
 * $FAILIO_TRIGGER exists, fdatasync() and fsync() fail with EIO, as they
 * do when a disk goes bad under a running server; otherwise they are the
 * real calls. The tests create the file at the moment they choose, so the
 * failure lands between two known requests. Only the error path the
 * kernel would take is faked: the data written before stays on disk.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void)
{
    const char *trigger = getenv("FAILIO_TRIGGER");
    return trigger && access(trigger, F_OK) == 0;
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
