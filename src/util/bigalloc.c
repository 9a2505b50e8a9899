/*
 * bigalloc.c - calloc plus a huge-page hint for large tables; see
 * bigalloc.h. The hint is advice: if the kernel refuses it, the table
 * still works with small pages.
 */
#include "bigalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define FL_HUGE_MIN (4u << 20) /* below this the TLB copes */

void *fl_calloc_table(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = calloc(n, size);
    size_t bytes = n * size;
    if (!p || bytes < FL_HUGE_MIN) return p;
    /* Large callocs are fresh mmap'ed pages: advise before the first touch,
     * on the page-aligned interior. */
    uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (end > start && getenv("FL_THP")) (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
    return p;
}
