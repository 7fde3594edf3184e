// PushKey and UpdateCounter: a worker's push is one optimizer step and one version of
// every table it touches, however many slices and requests (chunks) carry it.
//
// A table keeps, per worker, the key of the last push it applied and the update number
// that push was given; a slice with the same key reuses that number, a new key takes the
// next one. Requests without a push id are each their own push (ParameterStore gives
// them a key of their own).
//
// Thread safety: UpdateCounter is guarded by its table's lock.
#ifndef PS_SERVER_TABLE_PUSH_KEY_H_
#define PS_SERVER_TABLE_PUSH_KEY_H_

#include <cstdint>
#include <map>

namespace ps {

struct PushKey {
  int worker = -1;
  uint64_t incarnation = 0;
  int64_t sequence = 0;
  bool operator==(const PushKey& o) const {
    return worker == o.worker && incarnation == o.incarnation && sequence == o.sequence;
  }
};

class UpdateCounter {
 public:
  // The 1-based update number of `key`'s push; a push not seen before advances
  // `*version` (the table's count of updates) and takes its new value.
  // What UpdateFor(key, &version) would return, changing nothing.
  int64_t Peek(const PushKey& key, int64_t version) const {
    auto it = last_.find(key.worker);
    if (it != last_.end() && it->second.number != 0 && it->second.key == key) {
      return it->second.number;
    }
    return version + 1;
  }
  int64_t UpdateFor(const PushKey& key, int64_t* version) {
    Last& last = last_[key.worker];
    if (last.number == 0 || !(last.key == key)) {
      last.key = key;
      last.number = ++*version;
    }
    return last.number;
  }

 private:
  struct Last {
    PushKey key;
    int64_t number = 0;
  };
  std::map<int, Last> last_;
};

}  // namespace ps

#endif  // PS_SERVER_TABLE_PUSH_KEY_H_
