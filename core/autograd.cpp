// core/autograd.cpp — grad mode, recording ops, and the backward pass.
#include "core/autograd.h"

#include <atomic>
#include <cmath>
#include <unordered_map>
#include <utility>

#include "core/gradient_home.h"
#include "core/ops.h"
#include "core/tensor_internal.h"

namespace fm {
namespace {
thread_local bool g_grad_mode = true;
thread_local bool g_anomaly_mode = false;

// Number of NaN/Inf elements (0 for an undefined tensor). Copies to the host in float64: anomaly
// mode is for finding a bug, not for speed.
std::int64_t count_non_finite(const Tensor& t) {
  if (!t.defined()) return 0;
  std::int64_t count = 0;
  for (double v : t.to_vector())
    if (!std::isfinite(v)) ++count;
  return count;
}

std::string shapes_of(const std::vector<Tensor>& tensors) {
  std::string out;
  for (std::size_t i = 0; i < tensors.size(); ++i)
    out += cat(i ? ", " : "", tensors[i].defined() ? shape_str(tensors[i].shape()) : std::string("none"));
  return out;
}

// Forward check: the op's output must be finite unless an input already was not (then the op is not
// the culprit, and the message says where the bad numbers came in).
void check_forward_output(const Tensor& output, const char* op_name, const std::vector<Tensor>& inputs) {
  std::int64_t bad = count_non_finite(output);
  if (bad == 0) return;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (std::int64_t bad_in = count_non_finite(inputs[i]))
      throw NumericError(cat("anomaly: ", op_name, " (inputs ", shapes_of(inputs), ") received ", bad_in,
                             " NaN/Inf values in input ", i, ", made outside the recorded graph"));
  throw NumericError(cat("anomaly: forward of ", op_name, " produced ", bad, " NaN/Inf values in its output ",
                         shape_str(output.shape()), " from finite inputs (", shapes_of(inputs), ")"));
}

void check_backward_gradients(const Node& node, const Tensor& grad_output, const std::vector<Tensor>& input_grads) {
  for (std::size_t i = 0; i < input_grads.size(); ++i) {
    std::int64_t bad = count_non_finite(input_grads[i]);
    if (bad == 0) continue;
    std::int64_t bad_in = count_non_finite(grad_output);
    throw NumericError(cat("anomaly: backward of ", node.op_name, " produced ", bad,
                           " NaN/Inf values in the gradient of input ", i, " ", shape_str(input_grads[i].shape()),
                           " (inputs ", shapes_of(node.inputs), ")",
                           bad_in ? cat("; its incoming gradient already held ", bad_in, " NaN/Inf values")
                                  : std::string(" from a finite incoming gradient")));
  }
}
}  // namespace

bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }
EnableGradGuard::EnableGradGuard() : previous_(g_grad_mode) { g_grad_mode = true; }
EnableGradGuard::~EnableGradGuard() { g_grad_mode = previous_; }

namespace {
thread_local BackwardObserver g_backward_observer;
}  // namespace
BackwardObserverGuard::BackwardObserverGuard(BackwardObserver observer)
    : previous_(std::exchange(g_backward_observer, std::move(observer))) {}
BackwardObserverGuard::~BackwardObserverGuard() { g_backward_observer = std::move(previous_); }

bool anomaly_mode_enabled() { return g_anomaly_mode; }
AnomalyModeGuard::AnomalyModeGuard(bool enabled) : previous_(g_anomaly_mode) { g_anomaly_mode = enabled; }
AnomalyModeGuard::~AnomalyModeGuard() { g_anomaly_mode = previous_; }

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}
bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

Tensor record_op(Tensor output, const char* op_name, std::vector<Tensor> inputs,
                 std::function<std::vector<Tensor>(const Tensor&)> backward) {
  if (!any_requires_grad(inputs)) return output;
  if (g_anomaly_mode) check_forward_output(output, op_name, inputs);
  auto node = std::make_shared<Node>();
  node->op_name = op_name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::move(node);
  return output;
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  // Sum over leading dims that `shape` lacks, and over dims where shape has 1 but grad does not.
  std::size_t lead = grad.shape().size() - shape.size();
  std::vector<int> dims;
  for (std::size_t i = 0; i < grad.shape().size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) dims.push_back(int(i));
  Tensor reduced = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return reduced.reshape(shape);
}

namespace {

// Numbers the backward passes, for Node::visited_in_pass (0: never visited).
std::atomic<std::uint64_t> g_backward_passes{0};

// The gradients waiting at the outputs of one pass's nodes, each in the slot of its node's position
// in the topological order (Node::order_index): a vector instead of a hash map.
class PendingGradients {
 public:
  explicit PendingGradients(std::size_t nodes) : slots_(nodes) {}
  Tensor& operator[](TensorImpl* t) { return slots_[t->grad_fn->order_index]; }

 private:
  std::vector<Tensor> slots_;
};

void accumulate(Tensor& slot, const Tensor& g) {
  // A parameter of a flattened model accumulates into its slice of the flat gradient buffer
  // (core/gradient_home.h); every other slot takes the first gradient and then fresh sums.
  if (accumulate_in_gradient_home(slot, g)) return;
  if (!slot.defined())
    slot = g;
  else
    slot = add(slot, g);
}

}  // namespace

void Tensor::backward() const {
  FM_CHECK(defined(), AutogradError, "backward: called on an undefined tensor");
  FM_CHECK(numel() == 1, AutogradError, "backward: output has shape ", shape_str(shape()),
           "; backward() without a gradient needs a one-element (scalar) output");
  backward(Tensor::ones(shape(), dtype(), device()));
}

void Tensor::backward(const Tensor& grad_output) const {
  FM_CHECK(defined(), AutogradError, "backward: called on an undefined tensor");
  FM_CHECK(requires_grad(), AutogradError,
           "backward: tensor does not require grad (no input of its graph has requires_grad set, "
           "or it was computed under NoGradGuard)");
  FM_CHECK(grad_output.shape() == shape(), AutogradError, "backward: gradient shape ",
           shape_str(grad_output.shape()), " does not match output shape ", shape_str(shape()));
  NoGradGuard no_grad;
  // This pass's observer, taken off the thread for the pass: a backward() run inside a node's closure
  // (a vector-Jacobian product, say) must not report this pass's leaves as final. Put back after.
  struct TakeObserver {
    BackwardObserver taken = std::exchange(g_backward_observer, nullptr);
    ~TakeObserver() { g_backward_observer = std::move(taken); }
  } take_observer;
  const BackwardObserver& observer = take_observer.taken;

  if (!impl()->grad_fn) {  // backward on a leaf: its gradient is grad_output itself
    accumulate(impl()->grad, grad_output);
    if (observer) observer({impl()});
    return;
  }

  // Topological order of the tensors that carry a node (iterative DFS: graphs can be deep). A node
  // is marked visited with this pass's number (Node::visited_in_pass): no hash set to fill.
  const std::uint64_t pass = g_backward_passes.fetch_add(1) + 1;
  std::vector<TensorImpl*> order;
  std::vector<std::pair<TensorImpl*, std::size_t>> stack;
  stack.push_back({impl(), 0});
  impl()->grad_fn->visited_in_pass = pass;
  while (!stack.empty()) {
    auto& [node_impl, next_input] = stack.back();
    const auto& inputs = node_impl->grad_fn->inputs;
    if (next_input < inputs.size()) {
      TensorImpl* child = inputs[next_input++].impl();
      if (child && child->requires_grad && child->grad_fn && child->grad_fn->visited_in_pass != pass) {
        child->grad_fn->visited_in_pass = pass;
        stack.push_back({child, 0});
      }
    } else {
      node_impl->grad_fn->order_index = order.size();
      order.push_back(node_impl);
      stack.pop_back();
    }
  }

  // With an observer: which leaves are final after which node — after the last node (in running
  // order) that has them as an input, whether or not a gradient reached them.
  std::vector<std::vector<TensorImpl*>> leaves_done_after;
  if (observer) {
    leaves_done_after.resize(order.size());
    std::unordered_map<TensorImpl*, std::size_t> last_reader;
    for (std::size_t run = 0; run < order.size(); ++run)
      for (const Tensor& input : order[order.size() - 1 - run]->grad_fn->inputs)
        if (input.defined() && input.requires_grad() && !input.grad_fn()) last_reader[input.impl()] = run;
    // In input order within a node, each leaf once (deterministic, for whoever logs them).
    for (std::size_t run = 0; run < order.size(); ++run)
      for (const Tensor& input : order[order.size() - 1 - run]->grad_fn->inputs) {
        auto found = input.defined() ? last_reader.find(input.impl()) : last_reader.end();
        if (found != last_reader.end() && found->second == run) {
          leaves_done_after[run].push_back(found->first);
          last_reader.erase(found);
        }
      }
  }

  PendingGradients grads(order.size());
  grads[impl()] = grad_output;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* t = *it;
    Tensor g = std::move(grads[t]);
    if (!g.defined()) {  // no gradient flowed here
      if (observer) observer(leaves_done_after[std::size_t(it - order.rbegin())]);
      continue;
    }
    Node& node = *t->grad_fn;
    std::vector<Tensor> input_grads = node.backward(g);
    FM_CHECK(input_grads.size() == node.inputs.size(), AutogradError, "backward of ", node.op_name,
             ": returned ", input_grads.size(), " gradients for ", node.inputs.size(), " inputs");
    if (g_anomaly_mode) check_backward_gradients(node, g, input_grads);
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      const Tensor& input = node.inputs[i];
      if (!input.requires_grad() || !input_grads[i].defined()) continue;
      FM_CHECK(input_grads[i].shape() == input.shape(), AutogradError, "backward of ", node.op_name,
               ": gradient ", shape_str(input_grads[i].shape()), " for input ", i, " of shape ",
               shape_str(input.shape()));
      if (input.grad_fn())
        accumulate(grads[input.impl()], input_grads[i]);
      else
        accumulate(input.impl()->grad, input_grads[i].contiguous());
    }
    if (observer) observer(leaves_done_after[std::size_t(it - order.rbegin())]);
  }
}

}  // namespace fm
