/*
 * bigalloc.h - zeroed allocation for large tables probed at random.
 *
 * Why: a hash table of tens of megabytes (the vehicle and trip maps, a geo
 * set's member hash, the supply cells at millions of vehicles) is read at
 * random, and with 4 KB pages nearly every probe also misses the TLB.
 * Asking for transparent huge pages (madvise MADV_HUGEPAGE, honoured when
 * the kernel's THP mode is "madvise" or "always") makes one TLB entry
 * cover 2 MB. Small tables are left alone.
 *
 * Ownership: the caller frees the result with free(). Returns NULL on
 * allocation failure (callers decide whether to abort).
 */
#ifndef FL_UTIL_BIGALLOC_H
#define FL_UTIL_BIGALLOC_H

#include <stddef.h>

void *fl_calloc_table(size_t n, size_t size);

#endif
