// core/gradient_home.cpp — the registry of gradient homes (see core/gradient_home.h).
#include "core/gradient_home.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "core/autograd.h"
#include "core/ops_optim.h"

namespace fm {
namespace {

struct Registry {
  std::mutex mutex;  // backward may run on several threads
  std::unordered_map<const Tensor*, Tensor> homes;  // &TensorImpl::grad → home
  std::atomic<std::size_t> size{0};  // read without the lock: most programs register nothing
};
Registry& registry() {
  static Registry* instance = new Registry();  // never destroyed: leaves in static objects
  return *instance;
}

}  // namespace

void set_gradient_home(const Tensor& leaf, const Tensor& home) {
  FM_CHECK(leaf.defined() && home.defined() && home.shape() == leaf.shape() && home.dtype() == leaf.dtype() &&
               home.device() == leaf.device() && home.is_contiguous(),
           ValueError, "set_gradient_home: the home must be a contiguous tensor like the leaf");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.homes[&leaf.impl()->grad] = home;
  r.size = r.homes.size();
}

void clear_gradient_home(const Tensor& leaf) {
  if (!leaf.defined()) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.homes.erase(&leaf.impl()->grad);
  r.size = r.homes.size();
}

Tensor gradient_home(const Tensor& leaf) {
  if (!leaf.defined()) return Tensor();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto found = r.homes.find(&leaf.impl()->grad);
  return found == r.homes.end() ? Tensor() : found->second;
}

bool accumulate_in_gradient_home(Tensor& slot, const Tensor& g) {
  Registry& r = registry();
  if (r.size.load(std::memory_order_relaxed) == 0) return false;
  Tensor home;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto found = r.homes.find(&slot);
    if (found == r.homes.end()) return false;
    home = found->second;
  }
  if (g.shape() != home.shape() || g.dtype() != home.dtype() || g.device() != home.device()) return false;
  NoGradGuard no_grad;
  if (!slot.defined()) {
    home.copy_(g);
    slot = home;
    return true;
  }
  if (slot.impl() != home.impl()) return false;  // a gradient set by hand: leave it to the default path
  add_into(home, g);
  return true;
}

}  // namespace fm
