#include "worker/train/gradient_buffer.h"

namespace ps {

bool GradientBuffer::Full(bool last_of_epoch, absl::Time now) const {
  return last_of_epoch || buffered_ >= limits_.steps ||
         (limits_.bytes > 0 && buffered_ * step_bytes_ >= limits_.bytes) ||
         (limits_.time > absl::ZeroDuration() && now - last_flush_ >= limits_.time);
}

}  // namespace ps
