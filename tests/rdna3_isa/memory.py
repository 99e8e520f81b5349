"""Global memory as named allocations at made-up addresses, every access bounds-checked, and a
workgroup's LDS.

Alignment is checked too, though ROCm runs gfx11 in its unaligned mode, where the hardware would
serve a misaligned access: clang emits a wide access only where the source promises its alignment
(a <4 x i32> load aligned to 8 becomes two 8-byte loads), so a misaligned one is a broken promise.
"""

from __future__ import annotations

import numpy as np

from rdna3_isa.wave import IsaFault

_BASE = 0x7F00_0000_0000
_GAP = 1 << 20  # unmapped bytes between allocations: an overrun lands in no allocation


class GlobalMemory:
    def __init__(self) -> None:
        self._bases: list[int] = []
        self._names: list[str] = []
        self._data: list[np.ndarray] = []
        self._next = _BASE

    def allocate(self, name: str, contents: np.ndarray | bytes | int) -> int:
        """A new allocation holding `contents` (bytes, an array's bytes, or that many 0xAB bytes: poison)."""
        if isinstance(contents, int):
            data = np.full(contents, 0xAB, dtype=np.uint8)
        else:
            data = np.frombuffer(bytes(contents) if isinstance(contents, bytes) else
                                 np.ascontiguousarray(contents).tobytes(), dtype=np.uint8).copy()
        base = self._next
        self._bases.append(base)
        self._names.append(name)
        self._data.append(data)
        self._next = base + (len(data) + _GAP + 255) // 256 * 256
        return base

    def contents(self, base: int) -> np.ndarray:
        return self._data[self._bases.index(base)]

    def _locate(self, addresses: np.ndarray, nbytes: int, what: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """[(lane selector, allocation bytes, offsets)] for the lanes' accesses of nbytes each."""
        slots = np.searchsorted(np.array(self._bases, dtype=np.uint64), addresses, side="right").astype(np.int64) - 1
        out = []
        for slot in np.unique(slots):
            lanes = slots == slot
            offsets = (addresses[lanes] - np.uint64(self._bases[slot] if slot >= 0 else 0)).astype(np.int64)
            data = self._data[slot] if slot >= 0 else np.zeros(0, dtype=np.uint8)
            if slot < 0 or offsets.min() < 0 or offsets.max() + nbytes > len(data):
                bad = int(addresses[lanes][0])
                name = self._names[slot] if slot >= 0 else "nothing"
                size = len(data)
                raise IsaFault(f"{what}: {nbytes}-byte access at 0x{bad:x} outside '{name}' "
                               f"(offset {int(offsets.max()) if slot >= 0 else '-'} of {size} bytes)")
            if nbytes in (2, 4, 8, 16) and (offsets % min(nbytes, 4)).any():
                raise IsaFault(f"{what}: {nbytes}-byte access not {min(nbytes, 4)}-byte aligned in '{self._names[slot]}'")
            out.append((lanes, data, offsets))
        return out

    def load(self, addresses: np.ndarray, nbytes: int, what: str) -> np.ndarray:
        """[lanes, nbytes] uint8 read at each address (uint64)."""
        result = np.zeros((len(addresses), nbytes), dtype=np.uint8)
        for lanes, data, offsets in self._locate(addresses, nbytes, what):
            result[lanes] = data[offsets[:, None] + np.arange(nbytes)]
        return result

    def store(self, addresses: np.ndarray, values: np.ndarray, what: str) -> None:
        """values: [lanes, nbytes] uint8 written at each address, in lane order."""
        nbytes = values.shape[1]
        for lanes, data, offsets in self._locate(addresses, nbytes, what):
            data[offsets[:, None] + np.arange(nbytes)] = values[lanes]


class Lds:
    """One workgroup's LDS: the kernel's static size, poisoned, accesses naturally aligned, and
    checked for races. The interpreter runs a workgroup's waves one after another between
    barriers, which hides a missing barrier; so between two barriers, a byte one wave writes may be
    neither read nor written by another (the hardware may interleave the waves in any order)."""

    def __init__(self, nbytes: int) -> None:
        self.data = np.full(nbytes, 0xAB, dtype=np.uint8)
        self._writer = np.full(nbytes, -1, dtype=np.int32)  # the wave that wrote a byte since the barrier
        self._readers = np.zeros(nbytes, dtype=np.uint64)  # a bit per wave that read it since

    def barrier(self) -> None:
        self._writer[:] = -1
        self._readers[:] = 0

    def _offsets(self, addresses: np.ndarray, nbytes: int, what: str) -> np.ndarray:
        addresses = addresses.astype(np.int64)
        if len(addresses) and (addresses.min() < 0 or addresses.max() + nbytes > len(self.data)):
            raise IsaFault(f"{what}: LDS access at {int(addresses.max())} past its {len(self.data)} bytes")
        if (addresses % nbytes).any():
            raise IsaFault(f"{what}: {nbytes}-byte LDS access not {nbytes}-byte aligned "
                           f"(addresses {sorted({int(a) for a in addresses[addresses % nbytes != 0]})[:4]})")
        return addresses[:, None] + np.arange(nbytes)

    def _race(self, what: str, wave: int, kind: str, others: np.ndarray, offsets: np.ndarray) -> IsaFault:
        byte = int(offsets[others][0])
        return IsaFault(f"{what}: LDS race: wave {wave} {kind} byte {byte}, which another wave accessed since "
                        f"the last barrier (writer: wave {int(self._writer[byte])})")

    def load(self, addresses: np.ndarray, nbytes: int, what: str, wave: int) -> np.ndarray:
        offsets = self._offsets(addresses, nbytes, what)
        writers = self._writer[offsets]
        others = (writers >= 0) & (writers != wave)
        if others.any():
            raise self._race(what, wave, "reads", others, offsets)
        self._readers[offsets] |= np.uint64(1 << wave)
        return self.data[offsets]

    def store(self, addresses: np.ndarray, values: np.ndarray, what: str, wave: int) -> None:
        offsets = self._offsets(addresses, values.shape[1], what)
        writers = self._writer[offsets]
        others = ((writers >= 0) & (writers != wave)) | ((self._readers[offsets] & ~np.uint64(1 << wave)) != 0)
        if others.any():
            raise self._race(what, wave, "writes", others, offsets)
        self._writer[offsets] = wave
        self.data[offsets] = values
