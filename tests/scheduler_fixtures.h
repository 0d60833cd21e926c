// tests/scheduler_fixtures.h — a scheduler wrapper for tests that need a path over the times' host
// values: the wrapped scheduler's values without its law(), so AffineProbabilityPath cannot make the
// coefficients on the device (and a training step on it is never recorded). This was the path of
// every non-CondOT scheduler before the coefficient kernels; the tests compare the two.
#pragma once
#include <memory>
#include <string>
#include <utility>

#include "flow/scheduler.h"

namespace fm::test {

class HostValuesOnly final : public flow::Scheduler {
 public:
  explicit HostValuesOnly(std::shared_ptr<const flow::Scheduler> inner) : inner_(std::move(inner)) {}
  flow::SchedulerValues at(double t) const override { return inner_->at(t); }
  std::string name() const override { return inner_->name() + " (host values)"; }

 private:
  std::shared_ptr<const flow::Scheduler> inner_;
};

}  // namespace fm::test
