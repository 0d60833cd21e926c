// flow/trainer.cpp — the training step (see trainer.h); the checkpoint's layout is flow/checkpoint_format.cpp.
#include "flow/trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/autograd.h"
#include "core/captured_work.h"
#include "core/distributed.h"
#include "core/ops.h"

namespace fm::flow {

// The training step, recorded once and replayed every step (run_step). Its inputs — the batch x1, its
// source draws x0 and its times t (their Philox places move with the step), a conditional model's
// labels (in a device buffer the class-embedding lookup reads, RecordedStep::labels) — are either made eagerly
// and copied into the recording's input buffers, or, for images kept on the device, made inside the
// recording (inputs_recorded, below). The recording computes the loss from them, zeroes nothing (its backward pass writes the first gradient of each parameter into the flat
// gradient buffer, then adds the rest, as eagerly), then — when the optimiser's fused pass can read
// its step-dependent scalars from the device (nn/optim.h, step_scalars_ahead) — clips, steps the
// optimiser and the EMA, and adds the loss to the running sums. Those scalars (learning rate, bias
// corrections, EMA decay, "this batch began an epoch") come from a StepScalarsTable (core/ops_optim.h):
// the host plans them for the steps ahead, uploads them once per window of steps, and checks at every
// step that the row the replay will take is the one it would compute now (else it plans again from
// this step), so a replayed step has the bits of an eager one. Otherwise the recording stops after
// the backward pass and the clip + optimiser + EMA pass runs eagerly after each replay.
struct FlowTrainer::RecordedStep {
  CapturedWork graph;
  Tensor x1, x0, t;         // the inputs the recording reads, refilled before each replay
  RowIndex labels;          // a conditional model's labels, likewise (on the device; none when unconditional)
  FlowMatchingLoss result;  // the recording's outputs, rewritten by each replay
  // Each parameter and the gradient its slot held when the recording ended (its gradient home, or
  // nothing): put back before every replay, since code between steps (a clip on the reference path,
  // a zero_grad) may have replaced the slot, and the replay writes only into the homes.
  std::vector<std::pair<Tensor, Tensor>> gradients;
  std::uint64_t layout_id = 0;  // the flat parameter layout the recording reads and writes
  bool failed = false;          // the pass needed the host: every later step runs eagerly
  // The end of the step recorded too (see above).
  bool with_update = false;
  // The inputs made inside the recording too: x1 gathered from data kept on the device at the batch
  // position of the step's row, x0 and t drawn at its Philox step. A step is then one graph launch.
  bool inputs_recorded = false;
  std::unique_ptr<StepScalarsTable> scalars;
  std::vector<StepScalars> planned;  // the rows last uploaded: steps planned_from, planned_from + 1, …
  std::int64_t planned_from = 0, replays_since_upload = 0;
  nn::GradNorm grad_norm;  // the recorded pass's gradient norm (its tensor rewritten by each replay)
};

namespace {

static_assert(sizeof(StepScalars) == 6 * 4 + 2 * 4 + 8, "StepScalars: rows are compared byte for byte (no padding)");
bool same_scalars(const StepScalars& a, const StepScalars& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

FlowTrainer::FlowTrainer(nn::VelocityModel& model, nn::Optimizer& optimizer, nn::LRSchedule schedule,
                         nn::EMA* ema, TrainingData& data, std::shared_ptr<const AffineProbabilityPath> path,
                         std::shared_ptr<const TimeSampler> time_sampler, std::uint64_t seed,
                         TrainerOptions options)
    : model_(model), optimizer_(optimizer), schedule_(schedule), ema_(ema), data_(data), path_(std::move(path)),
      time_sampler_(std::move(time_sampler)), options_(options), seed_(seed), batch_epoch_(data.epoch()) {
  const int classes = model_.num_classes();
  FM_CHECK(classes == 0 || data_.num_classes() > 0, ConfigError, "model.num_classes: ", classes,
           ", but the training data (", data_.describe(), ") has no labels (expected model.num_classes = 0)");
  FM_CHECK(classes == 0 || data_.num_classes() == classes, ConfigError, "model.num_classes: ", classes,
           ", but the training data (", data_.describe(), ") has ", data_.num_classes(), " classes");
  FM_CHECK(options_.step_scalars_window >= 1, ValueError, "trainer: step_scalars_window ", options_.step_scalars_window,
           ", expected at least 1 step");
  FM_CHECK(options_.label_dropout >= 0 && options_.label_dropout < 1, ConfigError, "train.label_dropout: got ",
           options_.label_dropout, ", expected a number in [0, 1)");
  // A stored data set moves to the training device once, so the steps below gather their batches
  // there; the .to(device) in run_step is then a no-op (it copies only data made on the host).
  data_.keep_on(options_.device);
}

FlowTrainer::~FlowTrainer() = default;

bool FlowTrainer::can_record_step() const {
  // Not recorded: the CPU; a data-parallel step (its backward pass talks to the other ranks); times
  // drawn on the host, or a path that reads them there; the first step after construction or a
  // checkpoint load (it flattens the parameters and fills the caches the recording relies on, such as
  // the time embedding's frequencies). A conditional step is recorded with its labels read from a
  // device buffer (RecordedStep::labels): the host refills it before each replay, or, for labels kept
  // on the device, the recording fills it itself (inputs_recordable).
  return options_.record_steps && options_.device == Device::CUDA && !dist::active() &&
         steps_since_reset_ >= 1 && model_.flat_parameters() && !(recorded_ && recorded_->failed) &&
         time_sampler_->law() && path_->samples_from_device_times();
}

bool FlowTrainer::update_recorded() const { return recorded_ && recorded_->graph.captured() && recorded_->with_update; }

bool FlowTrainer::step_scalars(std::int64_t ahead, StepScalars& row) const {
  row = StepScalars{};
  if (!optimizer_.step_scalars_ahead(model_, ema_, ahead, schedule_.lr_at(step_ + ahead), row) ||
      !philox_step_fits(ahead))
    return false;
  fill_input_scalars(ahead, row);
  return true;
}

bool FlowTrainer::philox_step_fits(std::int64_t ahead) const {
  // The Philox counter holds 32 bits of the step: beyond, the step is not recorded (the eager
  // draws then refuse it with a clear error).
  return step_ + ahead < (std::int64_t(1) << 32);
}

void FlowTrainer::fill_input_scalars(std::int64_t ahead, StepScalars& row) const {
  // A window is planned at its first step, whose batch is drawn: later rows assume no new epoch (the
  // batches follow one another in the epoch's order), and a step that does begin one no longer
  // matches its row (it then plans again from itself).
  row.begins_epoch = ahead == 0 && began_epoch_ ? 1 : 0;
  row.philox_step = std::uint32_t(step_ + ahead);
  row.batch_start = data_.gathers_on_device() ? data_.batch_position(ahead, options_.batch_size) : 0;
}

bool FlowTrainer::inputs_recordable() const {
  // The batch made on the device (gathered, or fresh 2-D points drawn there), x0 from the Gaussian
  // source and t from a law (can_record_step): all three follow the step's row. Not: pairs that bring
  // their own x0, another source, a coupling (it pairs on the host). A conditional model's labels too,
  // when the data keeps them on the device (gathered through the same order, dropped at the same step).
  const bool gaussian = !options_.source || dynamic_cast<const GaussianSource*>(options_.source.get());
  const bool labels_recordable = model_.num_classes() == 0 || data_.gathers_labels_on_device();
  return labels_recordable && data_.gathers_on_device() && gaussian &&
         options_.coupling.kind == CouplingKind::Independent && !data_.paired_source().defined();
}

void FlowTrainer::plan_step_scalars(RecordedStep& r, const StepScalars& now, bool recorded) {
  const std::int64_t j = r.replays_since_upload;
  if (recorded && j < std::int64_t(r.planned.size()) && r.planned_from + j == step_ &&
      same_scalars(r.planned[std::size_t(j)], now))
    return;  // the replay's row is the one planned
  if (!r.scalars) r.scalars = std::make_unique<StepScalarsTable>(options_.step_scalars_window);
  r.planned.assign(1, now);
  StepScalars row;
  for (std::int64_t ahead = 1; ahead < options_.step_scalars_window && step_scalars(ahead, row); ++ahead)
    r.planned.push_back(row);
  r.scalars->upload(r.planned);  // queued before the replay that reads it
  r.planned_from = step_;
  r.replays_since_upload = 0;
}

void FlowTrainer::replay(RecordedStep& r, bool just_recorded) {
  for (const auto& [parameter, gradient] : r.gradients) {
    if (gradient.defined()) parameter.set_grad(gradient);
    else parameter.zero_grad();
  }
  r.graph.replay();
  ++replayed_steps_;
  if (r.with_update) {
    if (!just_recorded) optimizer_.count_replayed_update(ema_);  // (recording counted the step it recorded)
    ++r.replays_since_upload;
  }
}

std::optional<FlowMatchingLoss> FlowTrainer::recorded_loss_and_gradients(const Tensor& x1, const Tensor& x0,
                                                                         const std::vector<std::int32_t>& labels,
                                                                         const StepNoise& noise) {
  if (!recorded_) recorded_ = std::make_unique<RecordedStep>();
  RecordedStep& r = *recorded_;
  const std::uint64_t layout_id = model_.flat_parameters()->id();
  const bool conditional = model_.num_classes() > 0;
  const bool fits = r.graph.captured() && r.layout_id == layout_id && r.x1.shape() == x1.shape() &&
                    r.x1.dtype() == x1.dtype();
  // This step's scalars, if the optimiser's pass can take them from the device. A recording that has
  // the pass but can no longer run it from one row (not expected between checkpoint loads, which drop
  // the recording) is dropped like one of another shape or parameter layout (the model moved, say):
  // this step eagerly, which fills the caches of the new setting, then a new recording at the next.
  StepScalars now;
  const bool update_recordable = step_scalars(0, now);
  if (r.graph.captured() && (!fits || (r.with_update && !update_recordable))) {
    recorded_.reset();
    steps_since_reset_ = 0;
    return std::nullopt;
  }
  const bool with_update = fits ? r.with_update : update_recordable;
  const bool with_inputs = fits ? r.inputs_recorded : with_update && inputs_recordable();
  if (with_update) plan_step_scalars(r, now, fits);
  if (!with_inputs) {  // the inputs made eagerly (above), copied into the recording's buffers
    const Tensor t = time_sampler_->sample(x1.size(0), noise, x1.dtype(), x1.device());
    if (!fits) {
      r.x1 = Tensor::empty(x1.shape(), x1.dtype(), x1.device());
      r.x0 = Tensor::empty(x0.shape(), x0.dtype(), x0.device());
      r.t = Tensor::empty(t.shape(), t.dtype(), t.device());
    }
    r.x1.copy_(x1);
    r.x0.copy_(x0);
    r.t.copy_(t);
    // The labels into the buffer the recorded class-embedding lookup reads (forward and backward).
    if (conditional && fits) r.labels.overwrite(labels);
  }
  // A new recording's label buffer, holding this step's labels (a recording that makes its inputs
  // writes them again inside, the same numbers).
  if (conditional && !fits) r.labels = RowIndex(labels, model_.null_class() + 1, x1.device());
  if (!fits) {
    try {
      r.graph.begin_capture();
      if (with_update) r.scalars->select_next();
      if (with_inputs) {
        // The batch, x0 and t made inside the recording, where the step's row says: its batch
        // position and its Philox step are read from the device as the kernels run. (This step's
        // eager x1 and x0 above were the same numbers; later steps make none.)
        StepNoise device_noise = noise;
        device_noise.step_on_device = r.scalars->current_philox_step();
        r.x1 = data_.gather_batch(x1.size(0), data_.batch_position(0, x1.size(0)),
                                  r.scalars->current_batch_start(), device_noise);
        r.x0 = GaussianSource().sample(r.x1.shape(), device_noise, r.x1.dtype(), r.x1.device());
        r.t = time_sampler_->sample(r.x1.size(0), device_noise, r.x1.dtype(), r.x1.device());
        if (conditional) {
          // The batch's labels through the same order, dropped at run_step's places: the step's row
          // for the Philox step, samples from 0 (a recorded step is one process's whole batch).
          const LabelDropout dropout{options_.label_dropout, std::int32_t(model_.null_class()),
                                     noise.key(NoiseStream::LabelDropout), noise.step, 0,
                                     r.scalars->current_philox_step()};
          data_.gather_labels(r.labels, data_.batch_position(0, x1.size(0)), r.scalars->current_batch_start(), dropout,
                              device_noise);
        }
      }
      // A conditional model reads the labels from the recording's buffer (whatever it holds at a replay).
      const RowIndex& labels_buffer = r.labels;
      const ModelFn velocity =
          conditional
              ? ModelFn([this, &labels_buffer](const Tensor& x_t, const Tensor& t) {
                  return model_.forward(x_t, t, labels_buffer);
                })
              : ModelFn([this](const Tensor& x_t, const Tensor& t) { return model_.forward(x_t, t); });
      r.result = conditional_flow_matching_loss(velocity, r.x1, *path_, r.t, r.x0);
      optimizer_.zero_grad();
      r.result.loss.backward();
    } catch (const DeviceError& e) {
      // Something in the pass needed the host (anomaly mode's checks, say): eager from now on.
      recording_note_ = cat("the training step's forward and backward pass could not be recorded as a CUDA graph (",
                            e.what(), "); every step runs eagerly, with the same numbers");
      r.graph.abandon();
      recorded_ = std::make_unique<RecordedStep>();  // buffers and graph let go
      recorded_->failed = true;
      return std::nullopt;
    } catch (...) {
      r.graph.abandon();
      throw;
    }
    bool update_counted = false;
    try {
      // The pass advances the host's bookkeeping (Adam's step counts, the EMA's update count) for
      // this step as it records; a replay advances it with count_replayed_update.
      if (with_update) {
        r.grad_norm = optimizer_.clip_step_and_update_ema_async(
            model_, options_.grad_clip > 0 ? options_.grad_clip : INFINITY, ema_, r.scalars->current());
        update_counted = true;
        losses_.add(r.result.loss, began_epoch_, r.scalars->current());
      }
      r.graph.end_capture();
    } catch (const DeviceError& e) {
      // Nothing recorded has run: the counts the pass advanced are taken back, and this step and
      // every later one run eagerly (this step's inputs are drawn already).
      r.graph.abandon();
      if (update_counted) optimizer_.uncount_recorded_update(ema_);
      recording_note_ = cat("the training step could not be recorded as a CUDA graph (", e.what(),
                            "); every step runs eagerly, with the same numbers");
      recorded_ = std::make_unique<RecordedStep>();
      recorded_->failed = true;
      return std::nullopt;
    } catch (...) {
      r.graph.abandon();
      throw;
    }
    r.with_update = with_update;
    r.inputs_recorded = with_inputs;
    r.layout_id = layout_id;
    r.gradients.clear();
    for (const auto& [name, parameter] : model_.named_parameters()) r.gradients.emplace_back(parameter, parameter.grad());
  }
  replay(r, !fits);
  return r.result;
}

bool FlowTrainer::replay_whole_step() {
  if (!recorded_ || !recorded_->graph.captured() || !recorded_->inputs_recorded) return false;
  RecordedStep& r = *recorded_;
  // Anything else (a moved model, say) takes the general path, which drops the recording.
  const double lr = schedule_.lr_at(step_);
  StepScalars now;
  if (!can_record_step() || model_.flat_parameters()->id() != r.layout_id ||
      !optimizer_.step_scalars_ahead(model_, ema_, 0, lr, now) || !philox_step_fits(0) || !inputs_recordable())
    return false;
  // The host's part of the step: the data's position (a new epoch's order copied into the buffer the
  // recording gathers from), the rest of the step's row of scalars (which depends on that position),
  // one graph launch. (The optimiser's part of the row, above, is step_scalars(0)'s: one pass over the
  // parameters' bookkeeping per step, not two.)
  data_.skip_batch(options_.batch_size, StepNoise{seed_, step_, 0});
  began_epoch_ = data_.epoch() != batch_epoch_;
  batch_epoch_ = data_.epoch();
  last_.lr = lr;
  optimizer_.set_lr(lr);
  fill_input_scalars(0, now);
  plan_step_scalars(r, now, true);
  replay(r, false);
  last_.grad_norm = r.grad_norm;
  finish_step(r.result, r.result.loss, /*loss_added=*/true);
  return true;
}

std::vector<std::int32_t> drop_labels(std::vector<std::int32_t> labels, double dropout, std::int32_t null_class,
                                      const StepNoise& noise) {
  if (dropout <= 0) return labels;
  const PhiloxKey key = noise.key(NoiseStream::LabelDropout);
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (philox_uniform_at(key, noise.step, noise.first_sample + std::int64_t(i), 0) < dropout) labels[i] = null_class;
  return labels;
}

void FlowTrainer::gather_eager_labels(const Tensor& x1, const StepNoise& noise) {
  // One buffer, made once (the step's labels written into it by a kernel): no allocation and no copy
  // a step. The previous step's lookups, queued on the same stream, have read it before it changes.
  if (eager_labels_.size() != x1.size(0) || eager_labels_.device() != x1.device())
    eager_labels_ = RowIndex(std::vector<std::int32_t>(std::size_t(x1.size(0)), 0), model_.null_class() + 1,
                             x1.device(), "trainer labels");
  // The rows of the step's samples noise.first_sample … (a rank's slice, or the whole batch).
  data_.gather_served_labels(eager_labels_, options_.batch_size, noise, options_.label_dropout,
                             std::int32_t(model_.null_class()));
}

void FlowTrainer::run_step() {
  log_read_.valid = false;  // the numbers kept for the readers are the previous step's
  model_.train();
  if (replay_whole_step()) return;  // recorded inputs and all: the host only plans and launches
  // The whole (global) batch is samples 0 … batch_size − 1 of this step; a rank of a data-parallel
  // job trains on its slice [first, first + count) of them. Every number of a sample is keyed by its
  // global index — fresh points, the source's x0, the label dropout, the times — and a stored set's
  // rows come from an epoch order every rank computes alike, so the rank makes only its slice
  // (TrainingData::next_slice), the same bits. Except under a coupling, which must see the whole
  // batch to pair it as one process would: then the rank makes the whole batch and keeps its slice.
  const RankSlice slice = rank_slice(options_.batch_size);
  const bool draw_slice = slice.count != options_.batch_size && data_.serves_slices() &&
                          options_.coupling.kind == CouplingKind::Independent;
  const StepNoise noise{seed_, step_, draw_slice ? slice.first : 0};
  const StepNoise whole_batch{seed_, step_, 0};
  Tensor x1 = (draw_slice ? data_.next_slice(options_.batch_size, slice.first, slice.count, whole_batch)
                          : data_.next_batch(options_.batch_size, whole_batch))
                  .to(options_.device);
  const bool conditional = model_.num_classes() > 0;
  // A conditional step that runs eagerly (a data-parallel rank's, the first after a start) on data
  // that keeps its labels on the device gathers them there, dropped there (gather_labels: the bits of
  // drop_labels), so it copies nothing from the host. From the host instead: a step that may be
  // recorded (the recording is made from them), and a coupling, which re-pairs them with the points.
  const bool may_record = can_record_step();
  const bool labels_on_device = conditional && data_.gathers_labels_on_device() && !may_record &&
                                options_.coupling.kind == CouplingKind::Independent &&
                                (draw_slice || slice.count == options_.batch_size);
  std::vector<std::int32_t> labels =
      conditional && !labels_on_device ? data_.batch_labels() : std::vector<std::int32_t>{};
  FM_CHECK(!conditional || labels_on_device || std::int64_t(labels.size()) == x1.size(0), ShapeError, "trainer: ",
           labels.size(), " labels for a batch of ", x1.size(0), " (", data_.describe(), ")");
  if (labels_on_device) gather_eager_labels(x1, noise);
  began_epoch_ = data_.epoch() != batch_epoch_;
  batch_epoch_ = data_.epoch();
  // x0: the pairs' own (reflow), or a draw from the source re-paired with the batch by the coupling.
  Tensor x0 = data_.paired_source();
  if (x0.defined()) {
    x0 = x0.to(options_.device);
  } else {
    x0 = options_.source ? options_.source->sample(x1.shape(), noise, x1.dtype(), x1.device())
                         : GaussianSource().sample(x1.shape(), noise, x1.dtype(), x1.device());
    if (options_.coupling.kind != CouplingKind::Independent) {
      const auto begin = std::chrono::steady_clock::now();
      const std::vector<std::int32_t> partners = coupling_partners(x0, x1, options_.coupling, noise);
      x1 = take_partners(x1, partners);
      if (conditional) labels = take_partners(labels, partners);  // a label belongs to its data point
      coupling_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    }
  }
  if (conditional && !labels_on_device)
    labels = drop_labels(std::move(labels), options_.label_dropout, model_.null_class(), noise);
  if (slice.count != options_.batch_size && !draw_slice) {
    x1 = x1.narrow(0, slice.first, slice.count).contiguous();
    x0 = x0.narrow(0, slice.first, slice.count).contiguous();
    if (conditional) labels = std::vector<std::int32_t>(labels.begin() + slice.first, labels.begin() + slice.first + slice.count);
  }
  ModelFn velocity = !conditional     ? ModelFn([this](const Tensor& x_t, const Tensor& t) { return model_.forward(x_t, t); })
                     : labels_on_device ? ModelFn([this](const Tensor& x_t, const Tensor& t) {
                                            return model_.forward(x_t, t, eager_labels_);
                                          })
                                        : ModelFn([this, &labels](const Tensor& x_t, const Tensor& t) {
                                            return model_.forward(x_t, t, labels);
                                          });
  const StepNoise loss_noise{seed_, step_, slice.first};
  last_.lr = schedule_.lr_at(step_);
  optimizer_.set_lr(last_.lr);
  std::optional<FlowMatchingLoss> recorded;
  if (may_record) recorded = recorded_loss_and_gradients(x1, x0, labels, loss_noise);
  // The replay ran the clip + optimiser + EMA pass and added the loss to the sums too.
  const bool update_replayed = recorded && recorded_ && recorded_->with_update;
  FlowMatchingLoss result =
      recorded ? *recorded : conditional_flow_matching_loss(velocity, x1, *path_, *time_sampler_, loss_noise, std::move(x0));
  // A rank's loss is the mean over its slice; weighted by the slice's share of the batch, the ranks'
  // losses (and gradients) sum to the mean over the whole batch. One rank: the loss as it is.
  Tensor loss = result.loss;
  if (dist::active()) loss = loss * (double(slice.count) / double(options_.batch_size));

  if (!model_.flat_parameters()) model_.flatten_parameters();
  if (!recorded) optimizer_.zero_grad();  // (a replay wrote the gradients already)
  if (recorded) {
    // Nothing to do: the replay ran the backward pass.
  } else if (dist::active()) {
    // The gradients are summed over the ranks bucket by bucket while backward() runs (nn/gradient_sync.h).
    const nn::FlatParameters& layout = *model_.flat_parameters();
    // The reduction runs over the flat buffer only: a layout that no longer holds every parameter
    // would leave the optimiser stepping unsummed per-parameter gradients.
    FM_CHECK(layout.intact(), ValueError, "data-parallel training: the model's flat parameter layout was replaced "
             "(a parameter slot re-assigned after flattening); expected the layout of flatten_parameters()");
    if (!sync_ || sync_->layout().id() != layout.id()) sync_ = std::make_unique<nn::GradientSync>(layout);
    {
      BackwardObserverGuard watch = sync_->watch_backward();
      loss.backward();
    }
    sync_->finish();
  } else {
    loss.backward();
  }
  // Always measure the norm (logged); clip only when asked (an infinite max_norm never scales).
  // Clip, step and EMA run as one pass over the model's flat parameter buffers (nn/flat_parameters.h,
  // kernels/optimizer.h), with the numbers of clip_grad_norm, step() and update() one after another.
  if (update_replayed)
    last_.grad_norm = recorded_->grad_norm;
  else
    last_.grad_norm = optimizer_.clip_step_and_update_ema_async(
        model_, options_.grad_clip > 0 ? options_.grad_clip : INFINITY, ema_);
  finish_step(result, loss, update_replayed);
}

void FlowTrainer::finish_step(const FlowMatchingLoss& result, const Tensor& loss, bool loss_added) {
  ++step_;
  ++steps_since_reset_;

  if (!loss_added) losses_.add(loss, began_epoch_);
  ++steps_in_sum_;
  if (began_epoch_) {
    steps_in_finished_epoch_ = steps_in_epoch_;
    steps_in_epoch_ = 0;
  }
  ++steps_in_epoch_;
  // Kept (not read) for last_step_stats: its per-t-bin losses.
  last_.per_sample_loss = result.per_sample_loss;
  last_.t = result.t;
}

RankSlice rank_slice(std::int64_t batch_size) {
  FM_CHECK(batch_size >= dist::world_size(), ConfigError, "train.batch_size: ", batch_size,
           " is smaller than the number of ranks (", dist::world_size(), "); expected at least one sample per rank");
  const dist::Share share = dist::even_share(batch_size, dist::rank(), dist::world_size());
  return {share.first, share.count()};
}

void FlowTrainer::check_ranks_agree() const {
  if (!dist::active()) return;
  // The weights (one flat buffer once the first step flattened them, else parameter by parameter),
  // then the EMA shadows.
  std::uint64_t mine = 0;
  if (const nn::FlatParameters* layout = model_.flat_parameters())
    mine = dist::bit_checksum(layout->values());
  else
    for (const auto& [name, parameter] : model_.named_parameters())
      mine = mine * 0x9e3779b97f4a7c15ull ^ dist::bit_checksum(parameter);
  if (ema_)
    for (const auto& [name, shadow] : ema_->state_dict()) mine = mine * 0x9e3779b97f4a7c15ull ^ dist::bit_checksum(shadow);
  // Two 32-bit halves, gathered: every rank sees every rank's checksum and can name the odd ones.
  const std::vector<std::int32_t> all =
      dist::allgather(std::vector<std::int32_t>{std::int32_t(mine >> 32), std::int32_t(mine & 0xffffffffu)});
  std::string differing;
  for (std::size_t r = 1; 2 * r < all.size(); ++r)
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1]) differing += cat(differing.empty() ? "" : ", ", r);
  FM_CHECK(differing.empty(), NumericError, "data-parallel ranks drifted apart: at step ", step_,
           " the weights of rank(s) ", differing, " differ from rank 0's (they must stay bitwise equal: same "
           "gradients, same optimiser; a non-deterministic kernel or a rank-dependent input is the usual cause)");
}

StepStats FlowTrainer::train_step() {
  run_step();
  return last_step_stats();
}

// The loss sums, the gradient norm and the per-t-bin losses of the last step, in one copy back
// (one wait on CUDA), kept until the next step. The same arithmetic on the same bits as reading each
// one on its own (LossAccumulator::read, GradNorm::value, loss_by_time_bins).
const FlowTrainer::LogRead& FlowTrainer::read_logged_values() const {
  if (log_read_.valid) return log_read_;
  readback_.clear();
  const int sums = losses_.queue(readback_);
  const bool stepped = last_.t.defined();
  int norm = -1, per_sample_loss = -1, t = -1;
  if (stepped) {
    norm = last_.grad_norm.queue(readback_);
    per_sample_loss = readback_.add(last_.per_sample_loss);
    t = readback_.add(last_.t);
  }
  readback_.read();
  log_read_.sums = LossAccumulator::sums_in(readback_, sums);
  log_read_.grad_norm = stepped ? last_.grad_norm.value_in(readback_, norm) : 0.0;
  // Data parallel: each rank summed its weighted share of the losses; the whole batch's are the sum
  // over the ranks (every rank reads at the same steps: the log steps are the same everywhere).
  if (dist::active()) {
    double shares[4] = {log_read_.sums.last, log_read_.sums.since_restart, log_read_.sums.epoch,
                        log_read_.sums.finished_epoch};
    dist::allreduce_sum(shares, 4);
    log_read_.sums = {shares[0], shares[1], shares[2], shares[3]};
  }
  log_read_.loss_by_t_bin.clear();
  if (stepped) {
    FM_CHECK(last_.per_sample_loss.dim() == 1 && last_.t.dim() == 1, ShapeError, "LossByTimeBins: per-sample loss ",
             shape_str(last_.per_sample_loss.shape()), " and t ", shape_str(last_.t.shape()), " must both be [N]");
    LossByTimeBins binned(options_.loss_bins);
    // The whole batch's per-sample numbers, in global sample order (rank order is slice order).
    binned.add(dist::allgather(readback_.values(per_sample_loss)), dist::allgather(readback_.values(t)));
    log_read_.loss_by_t_bin = binned.means();
  }
  readback_.clear();  // drops the tensors it kept
  log_read_.valid = true;
  return log_read_;
}

StepStats FlowTrainer::last_step_stats() const {
  StepStats stats;
  stats.step = step_;
  if (!last_.t.defined()) return stats;  // no step taken by this trainer yet
  const LogRead& read = read_logged_values();
  stats.lr = last_.lr;
  stats.loss = read.sums.last;
  stats.grad_norm = read.grad_norm;
  stats.loss_by_t_bin = read.loss_by_t_bin;
  return stats;
}

double FlowTrainer::take_coupling_seconds() {
  const double seconds = coupling_seconds_;
  coupling_seconds_ = 0;
  return seconds;
}

LossSum FlowTrainer::loss_sum() const { return {read_logged_values().sums.since_restart, steps_in_sum_}; }

LossSum FlowTrainer::take_loss_sum() {
  const LossSum sum = loss_sum();
  losses_.restart_sum();
  log_read_.sums.since_restart = 0;  // what the device now holds, so the kept read stays true
  steps_in_sum_ = 0;
  return sum;
}

LossSum FlowTrainer::finished_epoch_loss() const {
  return {read_logged_values().sums.finished_epoch, steps_in_finished_epoch_};
}

void FlowTrainer::restart_loss_sums() {
  log_read_.valid = false;
  losses_.clear();
  steps_in_sum_ = steps_in_epoch_ = steps_in_finished_epoch_ = 0;
  began_epoch_ = false;
  batch_epoch_ = data_.epoch();
  last_ = LastStep{};
}

void FlowTrainer::save_checkpoint(const std::string& path, std::map<std::string, std::string> metadata) const {
  save_training_checkpoint(path, checkpointed_state(), seed_, step_, std::move(metadata));
}

std::map<std::string, std::string> FlowTrainer::load_checkpoint(const std::string& path) {
  recorded_.reset();  // the restored weights may live in other buffers than the recording's
  steps_since_reset_ = 0;
  RestoredTraining restored = load_training_checkpoint(path, checkpointed_state());
  seed_ = restored.seed;
  step_ = restored.step;
  restart_loss_sums();  // the sums and the epoch count from the restored data position
  return restored.metadata;
}

}  // namespace fm::flow
