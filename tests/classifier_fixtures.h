// tests/classifier_fixtures.h — the small feature classifier the evaluation tests share: a
// quarter-width variant of the default (about 29k parameters) that trains on a thousand Fashion-MNIST
// images in seconds, enough to give features with structure, fast on two shared CPU cores.
#pragma once
#include <string>

#include "tools/eval_classifier.h"

namespace fm::test {

inline nn::ClassifierConfig narrow_classifier_config() {
  nn::ClassifierConfig config;
  config.stem_channels = 8;
  config.middle_channels = 16;
  config.last_channels = 16;
  config.groups = 4;
  config.feature_dim = 32;
  return config;
}

inline tools::ClassifierTrainingOptions quick_classifier_training(int epochs) {
  tools::ClassifierTrainingOptions options;
  options.epochs = epochs;
  options.batch_size = 32;
  options.lr = 3e-3;
  options.seed = 7;
  options.quiet = true;
  return options;
}

// A briefly trained narrow classifier saved to `path` (train_and_save_classifier on the first 1000
// train images, accuracy on the first 500 test images). Needs /usr/share/datasets/fashion-mnist.
inline void write_quick_classifier(const std::string& path) {
  tools::TrainClassifierRequest request;
  request.out_path = path;
  request.architecture = narrow_classifier_config();
  request.training = quick_classifier_training(2);
  request.train_limit = 1000;
  request.test_limit = 500;
  tools::train_and_save_classifier(request, nullptr);
}

}  // namespace fm::test
