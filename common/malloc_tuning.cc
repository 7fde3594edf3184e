#include "common/malloc_tuning.h"

#include <malloc.h>

namespace ps {

void KeepFreedMemoryForReuse() {
  // Blocks up to 256 MiB come from the heap, and up to 1 GiB of free heap is kept.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace ps
