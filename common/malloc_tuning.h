// Keeps freed memory in the process instead of returning it to the kernel at once.
//
// Every push and pull allocates and frees request-sized buffers (a megabyte or more).
// With glibc's defaults such blocks are mmap'd, page-faulted, zeroed and unmapped on
// every request; measured on the push/pull benchmark (docs/benchmarks.md), that cost
// more than the network path itself. Call once at the start of main().
#ifndef PS_COMMON_MALLOC_TUNING_H_
#define PS_COMMON_MALLOC_TUNING_H_

namespace ps {

void KeepFreedMemoryForReuse();

}  // namespace ps

#endif  // PS_COMMON_MALLOC_TUNING_H_
