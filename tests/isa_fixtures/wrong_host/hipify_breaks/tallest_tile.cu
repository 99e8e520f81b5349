// A host source that is right C++ and that hipify breaks: the host-code check must reject it
// (tests/test_isa.py). hipify rewrites every `std::max(` in a .cu file to HIP's two-argument,
// non-constexpr ::max, as it did to gemm_wmma.cu's tallest tile.
#include <algorithm>
#include <cstdint>

int64_t tallest_tile_fixture() {
  constexpr int64_t kTallest = std::max({32, 64, 128});
  return kTallest;
}
