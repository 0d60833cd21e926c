// tools/fashion_mnist_files.h — where Fashion-MNIST lives: the folder Debian's dataset-fashion-mnist
// installs, and the names of a split's two files in it. One place for them, so that the trainer's
// config defaults, fmeval and the tests cannot drift apart; kept apart from the readers and the
// classifier so that a tool needing only a path does not pull those in.
//
// Layer: tools/ (depends on nothing of the project).
#pragma once
#include <string>

namespace fm::tools {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The files of a split ("train" or "t10k"), named as the Fashion-MNIST release (and Debian's
// dataset-fashion-mnist) names them: DIR/<split>-images-idx3-ubyte.gz, DIR/<split>-labels-idx1-ubyte.gz.
std::string fashion_mnist_images_path(const std::string& data_dir, const std::string& split);
std::string fashion_mnist_labels_path(const std::string& data_dir, const std::string& split);

}  // namespace fm::tools
