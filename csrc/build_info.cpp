// build_info(): what this module was built for, for `w4a16-rdna3 info` and the tests.
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>

#include "gemm_dot2.h"

namespace {

pybind11::dict build_info() {
  pybind11::list arches;
  std::stringstream names(W4A16_ARCHES);
  for (std::string arch; std::getline(names, arch, ',');) {
    if (!arch.empty()) arches.append(arch);
  }
  pybind11::dict info;
  info["backend"] = W4A16_BACKEND;
#if defined(W4A16_RDNA3_EMULATION)
  info["emulation"] = true;
#else
  info["emulation"] = false;
#endif
  info["arches"] = arches;
  info["decode_group_multiple"] = w4a16::gemm_dot2_group_multiple();
  return info;
}

}  // namespace

PYBIND11_MODULE(W4A16_MODULE_NAME, m) {
  m.doc() = "w4a16_rdna3 native ops (registered with torch.ops on import) and build facts";
  m.def("build_info", &build_info,
        "backend, arches, whether this is the RDNA3 emulation build, and the group sizes gemm_dot2 takes "
        "(multiples of decode_group_multiple, or K)");
}
