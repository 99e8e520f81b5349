// rdna3_emu: see arch.cuh. Sections: common types and barrier; dot2 (decode); WMMA 16x16x16 (prefill).
#pragma once

namespace w4a16::arch {

// ---- common ----

// ---- dot2 (decode) ----

// ---- WMMA 16x16x16 (prefill) ----

}  // namespace w4a16::arch
