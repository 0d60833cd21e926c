// kernels/cpu/embedding.cpp — the lookup table's reference loops (see kernels/embedding.h).
#include "kernels/embedding.h"

#include <cstddef>

namespace fm::kernels {

template <typename T>
void embedding_forward_cpu(const T* table, const std::int32_t* index, T* out, int count, int rows, int dim) {
  (void)rows;  // the caller checked every index against it
  for (int i = 0; i < count; ++i)
    for (int d = 0; d < dim; ++d) out[std::size_t(i) * dim + d] = table[std::size_t(index[i]) * dim + d];
}

template <typename T>
void embedding_backward_cpu(const T* dout, const std::int32_t* index, T* dtable, int count, int rows, int dim) {
  for (std::size_t k = 0; k < std::size_t(rows) * dim; ++k) dtable[k] = T(0);
  // i in increasing order for every element: the order the CUDA kernel sums in, too.
  for (int i = 0; i < count; ++i)
    for (int d = 0; d < dim; ++d) dtable[std::size_t(index[i]) * dim + d] += dout[std::size_t(i) * dim + d];
}

template void embedding_forward_cpu<float>(const float*, const std::int32_t*, float*, int, int, int);
template void embedding_forward_cpu<double>(const double*, const std::int32_t*, double*, int, int, int);
template void embedding_backward_cpu<float>(const float*, const std::int32_t*, float*, int, int, int);
template void embedding_backward_cpu<double>(const double*, const std::int32_t*, double*, int, int, int);

}  // namespace fm::kernels
