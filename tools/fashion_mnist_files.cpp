// tools/fashion_mnist_files.cpp — the Fashion-MNIST file names (see the header).
#include "tools/fashion_mnist_files.h"

#include <filesystem>

namespace fm::tools {

std::string fashion_mnist_images_path(const std::string& data_dir, const std::string& split) {
  return (std::filesystem::path(data_dir) / (split + "-images-idx3-ubyte.gz")).string();
}

std::string fashion_mnist_labels_path(const std::string& data_dir, const std::string& split) {
  return (std::filesystem::path(data_dir) / (split + "-labels-idx1-ubyte.gz")).string();
}

}  // namespace fm::tools
