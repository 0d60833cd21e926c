// flow/trainer.h — the flow-matching training loop shared by the 2-D MLP and the U-Net.
//
// One step: draw a batch x1 from the data, noise x0 ~ N(0, I) and times t, regress the model's
// velocity on the path's target (flow/loss.h), backpropagate, clip, step the optimiser at the
// scheduled learning rate, update the EMA. Everything random in step s is drawn from the Philox
// streams of the run's seed at step s, per sample index (flow/step_noise.h), so a run is a pure
// function of its config and seed; the checkpoint (flow/checkpoint_format.h) stores the seed, the
// step, the data position, the optimiser and the EMA, so a resumed run continues bitwise where it
// stopped.
//
// Nothing in a step reads the device (issue 14): run_step() leaves the loss, the per-sample losses
// and times, and the gradient norm where they were computed, and adds the loss to float64 running sums
// on the device (core/ops_optim.h, LossAccumulator). The loop reads them when it logs
// (last_step_stats, take_loss_sum, finished_epoch_loss): on CUDA a step then costs the host no wait,
// and the numbers are bitwise those of reading every step (the sums add the same doubles in order).
// Whatever they read is gathered on the device and copied back once (core/ops_optim.h, HostReadback),
// so a log step waits for the device once, however many numbers it logs.
// train_step() is run_step() followed by last_step_stats(), for callers that want every step's numbers.
//
// On CUDA the step is recorded once as a CUDA graph and replayed (TrainerOptions::record_steps): the
// step-dependent numbers (learning rate, bias corrections, EMA decay, Philox step, batch position)
// come from a device row the host plans ahead and checks every step, so a replay has the eager bits;
// with images kept on the device a step is one graph launch (trainer.cpp, docs/ops/captured_work.md).
//
// Data parallel (core/distributed.h: several ranks under mpirun): each rank takes its slice of the
// global batch (rank_slice), every random number of a sample still keyed by its global index, so N
// ranks see exactly the samples one process would; the gradients are summed over the ranks during
// backward (nn/gradient_sync.h) and the optimiser, clipping and EMA then run identically on every
// rank. The logged numbers are the whole batch's (summed/gathered over the ranks when read), and
// check_ranks_agree() compares the ranks' weights bit for bit. A checkpoint holds nothing per rank:
// it resumes with any number of ranks.
//
// Class-conditional models (model.num_classes() > 0) train on the data's labels (TrainingData::
// batch_labels; the data must have exactly the model's classes). A coupling re-pairs x1's rows, and
// each label moves with its row: it belongs to the data point. Then each sample's label is replaced
// by the null class with probability label_dropout (classifier-free guidance's unconditional
// branch, Ho & Salimans 2022), decided by a uniform from the Philox place (seed, LabelDropout, step,
// sample index): nothing to store, so a resumed run drops the same labels. Data that keeps its labels
// on the device (images kept on CUDA, fresh points drawn there) has them gathered and dropped there,
// by a recording that makes its own inputs and by an eager step alike (TrainingData::
// gather_served_labels), on one GPU or on each rank of a data-parallel run. Still from the host: the
// labels under a coupling (it re-pairs them there), those of the step a recording is made at, and
// those of a recording whose inputs are made eagerly (another source, reflow pairs).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ops_optim.h"
#include "core/random.h"
#include "flow/checkpoint_format.h"
#include "flow/coupling.h"
#include "flow/loss.h"
#include "flow/source.h"
#include "flow/path.h"
#include "flow/time_sampler.h"
#include "flow/training_data.h"
#include "nn/ema.h"
#include "nn/gradient_sync.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "nn/velocity_model.h"

namespace fm::flow {

struct TrainerOptions {
  std::int64_t batch_size = 256;
  double grad_clip = 0.0;  // 0: off
  int loss_bins = 5;       // loss per t-bin in the statistics
  Device device = Device::CPU;
  // Where x0 comes from (null: N(0, I)) and how it is paired with the data batch. Data that brings
  // its own x0 (reflow pairs, TrainingData::paired_source) uses neither.
  std::shared_ptr<const SourceDistribution> source;
  CouplingOptions coupling;
  double label_dropout = 0.1;  // class-conditional models: P(label → null class), in [0, 1)
  // On CUDA, record the training step once (a CUDA graph, core/captured_work.h): the model's forward
  // and backward pass and, when the optimiser's fused pass allows, the clip + optimiser + EMA pass and
  // the loss sums; then replay it every step, with the same bits (flow/trainer.cpp). Off: every step
  // eager.
  bool record_steps = true;
  // A recorded step's step-dependent scalars are planned and copied to the device for this many
  // steps at a time (flow/trainer.cpp): one small copy per window instead of one per step.
  std::int64_t step_scalars_window = 256;
};

// The labels of a conditional step after dropout: labels[i], or null_class when the Philox uniform
// of (noise.seed, LabelDropout, noise.step, noise.first_sample + i) is below `dropout`.
std::vector<std::int32_t> drop_labels(std::vector<std::int32_t> labels, double dropout, std::int32_t null_class,
                                      const StepNoise& noise);

// This rank's share of a global batch of batch_size samples: [first, first + count), the ranks' slices
// in rank order covering the batch (sizes differ by at most one). One rank: the whole batch.
struct RankSlice {
  std::int64_t first = 0, count = 0;
};
RankSlice rank_slice(std::int64_t batch_size);

struct StepStats {
  std::int64_t step = 0;   // steps completed after this one
  double loss = 0;
  double grad_norm = 0;    // before clipping
  double lr = 0;
  std::vector<double> loss_by_t_bin;
};

// The losses of a run of steps: their sum (float64, added in step order) and how many there were.
struct LossSum {
  double sum = 0;
  std::int64_t steps = 0;
  double mean() const { return sum / double(steps > 0 ? steps : 1); }
};

class FlowTrainer {
 public:
  FlowTrainer(nn::VelocityModel& model, nn::Optimizer& optimizer, nn::LRSchedule schedule, nn::EMA* ema,
              TrainingData& data, std::shared_ptr<const AffineProbabilityPath> path,
              std::shared_ptr<const TimeSampler> time_sampler, std::uint64_t seed, TrainerOptions options);
  ~FlowTrainer();

  // One step, then its numbers (reads the device: a sync per step on CUDA).
  StepStats train_step();
  // One step that reads nothing back from the device (see the header comment).
  void run_step();
  // The last step's numbers (reads the device on CUDA). Before any step: step() and zeros.
  StepStats last_step_stats() const;
  // The sum of the losses of the steps since the previous take_loss_sum() (or since construction or
  // load_checkpoint), then a fresh sum. loss_sum() is the same without restarting.
  LossSum take_loss_sum();
  LossSum loss_sum() const;
  // Whether the last step's batch was the first of a new data epoch (TrainingData::epoch() moved), and
  // the loss of the epoch before it: its steps since construction or load_checkpoint.
  bool last_step_began_epoch() const { return began_epoch_; }
  // Host seconds spent pairing x0 with x1 (train.coupling) since the previous take_coupling_seconds();
  // 0 for independent pairs. On CUDA the Sinkhorn iterations are queued, not waited for, so this
  // is what the host spent, a lower bound of their cost.
  double take_coupling_seconds();
  LossSum finished_epoch_loss() const;

  // Data parallel: throws NumericError naming the ranks whose weights (and EMA weights) are not bitwise
  // rank 0's. A collective: every rank calls it at the same step. One rank: nothing to check.
  void check_ranks_agree() const;
  // Data parallel: host seconds spent waiting for gradient reductions since the previous call.
  double take_gradient_wait_seconds() { return sync_ ? sync_->take_wait_seconds() : 0.0; }

  std::int64_t step() const { return step_; }
  std::uint64_t seed() const { return seed_; }
  // Steps that ran from the recorded graph (TrainerOptions::record_steps).
  std::int64_t replayed_steps() const { return replayed_steps_; }
  // Whether the recording also runs the clip + optimiser + EMA pass and the loss sums (see
  // TrainerOptions::record_steps); false before a recording or when it has none.
  bool update_recorded() const;
  // Why the step could not be recorded (it then runs eagerly, with the same numbers); empty when it
  // was, or was never tried.
  const std::string& recording_note() const { return recording_note_; }

  // Checkpoint (the layout of flow/checkpoint_format.h): weights, EMA, optimiser, step, seed and
  // data state, and `metadata` (the run's config), written atomically as safetensors.
  void save_checkpoint(const std::string& path, std::map<std::string, std::string> metadata) const;
  // Restores everything save_checkpoint wrote; returns the file's metadata.
  std::map<std::string, std::string> load_checkpoint(const std::string& path);

 private:
  nn::VelocityModel& model_;
  nn::Optimizer& optimizer_;
  nn::LRSchedule schedule_;
  nn::EMA* ema_;
  TrainingData& data_;
  std::shared_ptr<const AffineProbabilityPath> path_;
  std::shared_ptr<const TimeSampler> time_sampler_;
  TrainerOptions options_;
  std::uint64_t seed_;
  std::int64_t step_ = 0;

  // What the last step left on the device, read only when asked.
  struct LastStep {
    double lr = 0;
    nn::GradNorm grad_norm;
    Tensor per_sample_loss, t;
  };
  LastStep last_;
  LossAccumulator losses_;
  // What the readers (last_step_stats, loss_sum, finished_epoch_loss) want, read back in one copy
  // the first time one of them asks after a step, and kept until the next step.
  struct LogRead {
    bool valid = false;
    LossAccumulator::Sums sums;
    double grad_norm = 0;
    std::vector<double> loss_by_t_bin;
  };
  mutable LogRead log_read_;
  mutable HostReadback readback_;
  const LogRead& read_logged_values() const;
  std::int64_t steps_in_sum_ = 0, steps_in_epoch_ = 0, steps_in_finished_epoch_ = 0;
  std::int64_t batch_epoch_;  // the data epoch of the last batch drawn (TrainingData::epoch())
  bool began_epoch_ = false;
  double coupling_seconds_ = 0;
  std::unique_ptr<nn::GradientSync> sync_;  // data parallel only: the gradient all-reduce
  void restart_loss_sums();

  // The recorded forward and backward pass (trainer.cpp): its input buffers, its outputs, its graph.
  struct RecordedStep;
  std::unique_ptr<RecordedStep> recorded_;
  std::int64_t replayed_steps_ = 0;
  // run_step calls since construction, load_checkpoint or a dropped recording (a new recording
  // waits for one eager step)
  std::int64_t steps_since_reset_ = 0;
  std::string recording_note_;
  bool can_record_step() const;
  // An eager conditional step's labels gathered on the device (data kept there) into eager_labels_:
  // those of x1's rows, samples noise.first_sample … of the step, after the label dropout.
  void gather_eager_labels(const Tensor& x1, const StepNoise& noise);
  RowIndex eager_labels_;
  // The step's loss and gradients from the recording (made at the first call, or again after a
  // shape or layout change); nullopt when it runs eagerly: the recording failed (never tried again) or
  // was dropped for a new shape or layout (recorded again after one eager step).
  // labels: a conditional step's (after dropout), one per sample; empty for an unconditional model.
  std::optional<FlowMatchingLoss> recorded_loss_and_gradients(const Tensor& x1, const Tensor& x0,
                                                              const std::vector<std::int32_t>& labels,
                                                              const StepNoise& noise);
  // The scalars of the step `ahead` steps after this one (0: this one), as a recorded step reads them
  // (false: the optimiser's pass cannot take them from the device).
  bool step_scalars(std::int64_t ahead, StepScalars& row) const;
  // Its two parts besides the optimiser's: whether the step fits the Philox counter's 32 bits, and
  // the data's and the noise's scalars (epoch start, Philox step, batch position).
  bool philox_step_fits(std::int64_t ahead) const;
  void fill_input_scalars(std::int64_t ahead, StepScalars& row) const;
  // Makes sure the next replay reads `now`: unless the uploaded window (of a recording that exists:
  // `recorded`) holds it as this step's row, a new window planned from this step and uploaded.
  void plan_step_scalars(RecordedStep& r, const StepScalars& now, bool recorded);
  // Whether the recording can make the step's inputs itself (x1, x0, t: see trainer.cpp).
  bool inputs_recordable() const;
  // The gradient slots put back, one graph launch, the host's bookkeeping of a replayed update.
  void replay(RecordedStep& r, bool just_recorded);
  // A whole step from a recording that makes its own inputs; false (nothing done) when there is none
  // or the step must take the general path.
  bool replay_whole_step();
  // The end of every step: the counts, the loss sums (unless the replay added the loss), what
  // last_step_stats reads.
  void finish_step(const FlowMatchingLoss& result, const Tensor& loss, bool loss_added);

  TrainingStateRefs checkpointed_state() const { return {model_, ema_, optimizer_, data_}; }
};

}  // namespace fm::flow
