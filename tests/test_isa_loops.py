"""w4a16_rdna3.isa_loops on hand-written gfx11 assembly: loop blocks found from clang's comments,
loads in flight counted across the back edge. No compiler needed (tests/test_isa.py runs the same
checks on compiled kernels)."""

from __future__ import annotations

from w4a16_rdna3 import isa_loops

# An outer loop (BB0_1) around an innermost one (BB0_2, header comment on the line after its
# label, a %bb block and a labelled block inside it). The inner loop issues a 16-byte and a 4-byte
# load at its bottom and waits for them at its top: both are in flight across the back edge, under
# the WMMA. The outer loop's own load (before the inner loop) must not count.
NESTED = """\
	s_mov_b32 s0, 0
.LBB0_1:                                ; =>This Loop Header: Depth=1
	global_load_b32 v9, v[0:1], off
	s_waitcnt vmcnt(0)
.LBB0_2:                                ;   Parent Loop BB0_1 Depth=1
                                        ; =>  This Inner Loop Header: Depth=2
	s_waitcnt vmcnt(0)
	v_mov_b32 v20, v5
	v_cmpx_gt_i32_e64 s2, v3
	s_cbranch_execz .LBB0_4
; %bb.3:                                ;   in Loop: Header=BB0_2 Depth=2
	v_wmma_f32_16x16x16_f16 v[0:7], v[8:15], v[16:23], v[0:7]
.LBB0_4:                                ;   in Loop: Header=BB0_2 Depth=2
	s_or_b32 exec_lo, exec_lo, s4
	global_load_b128 v[4:7], v[10:11], off
	v_dual_dot2acc_f32_f16 v1, v2, v3 :: v_dual_mov_b32 v4, 0
	global_load_b32 v8, v[12:13], off
	s_cbranch_scc1 .LBB0_2
; %bb.5:                                ;   in Loop: Header=BB0_1 Depth=1
	s_cbranch_scc1 .LBB0_1
"""

# Four loads, each waited for before the next leaves (the form the ISA check rejects).
SERIAL = """\
.LBB1_1:                                ; =>This Inner Loop Header: Depth=1
	global_load_b32 v1, v[0:1], off
	s_waitcnt vmcnt(0)
	global_load_b32 v2, v[0:1], off offset:4
	s_waitcnt vmcnt(0)
	global_load_b32 v3, v[0:1], off offset:8
	s_waitcnt vmcnt(0)
	global_load_b32 v4, v[0:1], off offset:12
	s_waitcnt vmcnt(0) lgkmcnt(0)
	v_add_f32_e32 v5, v1, v2
	s_cbranch_scc1 .LBB1_1
"""


def test_the_innermost_loop_and_its_blocks_are_found() -> None:
    (loop,) = isa_loops.innermost_loops(NESTED)
    assert loop.header == "BB0_2"
    assert loop.instructions == 10  # the inner loop's three blocks, not the outer loop's
    assert loop.loads == 2 and loop.loads_16b == 1
    assert loop.valu == 4  # v_mov, v_cmpx, v_wmma, the VOPD pair
    assert loop.matrix == 2  # the v_wmma and the dot2 half of the VOPD pair
    assert loop.exec_branches == 1
    assert loop.vector_addressed_loads == 2  # both take v[..], off


def test_a_load_is_vector_addressed_unless_it_takes_a_scalar_base() -> None:
    assert isa_loops.is_vector_addressed("global_load_b128 v[4:7], v[10:11], off")
    assert isa_loops.is_vector_addressed("global_load_b32 v2, v[0:1], off offset:4")
    assert isa_loops.is_vector_addressed("flat_load_b32 v80, v[31:32]")
    assert not isa_loops.is_vector_addressed("global_load_b32 v79, v31, s[44:45]")
    assert not isa_loops.is_vector_addressed("global_load_b128 v[81:84], v20, s[44:45] offset:16")
    assert not isa_loops.is_vector_addressed("buffer_load_b32 v1, v2, s[8:11], 0 offen")


def test_loads_in_flight_cross_the_back_edge() -> None:
    (loop,) = isa_loops.innermost_loops(NESTED)
    assert loop.max_in_flight == 2 and loop.max_16b_in_flight == 1
    # The wait at the top retires both before the v_wmma; the dot2 pair runs with the 16-byte
    # load in flight.
    assert loop.matrix_under_loads == 1
    assert loop.loads_leave_together
    assert isa_loops.hot_loop([loop]) is loop


def test_loads_waited_one_by_one_do_not_leave_together() -> None:
    (loop,) = isa_loops.innermost_loops(SERIAL)
    assert (loop.loads, loop.max_in_flight) == (4, 1)
    assert not loop.loads_leave_together
    assert isa_loops.hot_loop([loop]) is None  # no matrix instruction: no main loop


def test_a_wait_keeps_the_newest_loads() -> None:
    body = SERIAL.replace("s_waitcnt vmcnt(0)\n\tglobal_load_b32 v4", "global_load_b32 v4").replace(
        "s_waitcnt vmcnt(0)\n\tglobal_load_b32 v3", "s_waitcnt vmcnt(1)\n\tglobal_load_b32 v3"
    )
    (loop,) = isa_loops.innermost_loops(body)
    # v1 is waited for; vmcnt(1) leaves v2 in flight; v3 and v4 join it: three.
    assert loop.max_in_flight == 3


def test_loads_waited_alone_are_counted_in_and_out_of_loops() -> None:
    assert isa_loops.loads_waited_alone(SERIAL) == 4
    assert isa_loops.loads_waited_alone(NESTED) == 1  # the outer loop's load; the inner two leave together
