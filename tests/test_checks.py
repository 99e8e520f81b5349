"""check_gemm_args and check_perm_values: every bad input is refused with a message naming the argument."""

import pytest
import torch

from w4a16_rdna3 import gemm, gemm_reference
from w4a16_rdna3.checks import GemmShape, check_gemm_args, check_perm_values

M, K, N, G = 4, 256, 32, 64


def valid_args(dtype: torch.dtype = torch.float16) -> dict:
    return {
        "a": torch.zeros(M, K, dtype=dtype),
        "b_q": torch.zeros(K // 8, N, dtype=torch.int32),
        "scales": torch.ones(K // G, N, dtype=dtype),
        "zeros": torch.zeros(K // G, N // 8, dtype=torch.int32),
        "perm": torch.arange(K, dtype=torch.int32),
        "bias": torch.zeros(N, dtype=dtype),
    }


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """Same shape and values, every other element of a twice-as-wide buffer."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    out = wide[..., ::2]
    out.copy_(t)
    assert not out.is_contiguous()
    return out


# (argument, replacement, exception, text the message must contain)
BAD_INPUTS = [
    ("a", [[1.0] * K] * M, TypeError, "a: expected a torch.Tensor, got list"),
    ("a", torch.zeros(M, K), TypeError, "a: expected dtype torch.float16 or torch.bfloat16, got torch.float32"),
    ("a", torch.zeros(2, M, K, dtype=torch.float16), ValueError, "a: expected a 2-D tensor"),
    ("a", torch.zeros(M, K + 4, dtype=torch.float16),
     ValueError, "a: expected K = a.shape[1] a positive multiple of 8, got K = 260"),
    ("a", non_contiguous(torch.zeros(M, K, dtype=torch.float16)), ValueError, "a: expected a contiguous tensor"),
    ("b_q", torch.zeros(K // 8, N, dtype=torch.int64), TypeError, "b_q: expected dtype torch.int32, got torch.int64"),
    ("b_q", torch.zeros(K // 8 * N, dtype=torch.int32), ValueError, "b_q: expected a 2-D tensor [K/8, N]"),
    ("b_q", torch.zeros(K, N, dtype=torch.int32),
     ValueError, "b_q: expected shape [K/8, N] = [32, N] (K = 256 from a), got shape [256, 32]"),
    ("b_q", torch.zeros(K // 8, 12, dtype=torch.int32),
     ValueError, "b_q: expected N = b_q.shape[1] a positive multiple of 8, got N = 12"),
    ("b_q", non_contiguous(torch.zeros(K // 8, N, dtype=torch.int32)), ValueError, "b_q: expected a contiguous tensor"),
    ("scales", torch.ones(K // G, N), TypeError, "scales: expected dtype torch.float16 (same as a), got torch.float32"),
    ("scales", torch.ones(N, dtype=torch.float16), ValueError, "scales: expected a 2-D tensor [K/G, N] with N = 32"),
    ("scales", torch.ones(K // G, N + 8, dtype=torch.float16),
     ValueError, "scales: expected a 2-D tensor [K/G, N] with N = 32, got shape [4, 40]"),
    ("scales", torch.ones(3, N, dtype=torch.float16),
     ValueError, "scales: expected a number of rows K/G that divides K = 256, got 3 rows"),
    ("scales", torch.ones(0, N, dtype=torch.float16),
     ValueError, "scales: expected a number of rows K/G that divides K = 256, got 0 rows"),
    ("scales", torch.ones(64, N, dtype=torch.float16),
     ValueError, "scales: expected group size G = K / scales.shape[0] a multiple of 8, got G = 256 / 64 = 4"),
    ("scales", torch.ones(K // G, N, dtype=torch.float16, device="meta"),
     ValueError, "scales: expected device cpu (same as a), got meta"),
    ("scales", non_contiguous(torch.ones(K // G, N, dtype=torch.float16)),
     ValueError, "scales: expected a contiguous tensor"),
    ("zeros", torch.zeros(K // G, N // 8, dtype=torch.uint8),
     TypeError, "zeros: expected dtype torch.int32, got torch.uint8"),
    ("zeros", torch.zeros(K // G, N, dtype=torch.int32),
     ValueError, "zeros: expected shape [K/G, N/8] = [4, 4], got [4, 32]"),
    ("zeros", torch.zeros(N // 8, K // G + 1, dtype=torch.int32),
     ValueError, "zeros: expected shape [K/G, N/8] = [4, 4], got [4, 5]"),
    ("zeros", torch.zeros(K // G, N // 8, dtype=torch.int32, device="meta"),
     ValueError, "zeros: expected device cpu (same as a), got meta"),
    ("perm", torch.arange(K), TypeError, "perm: expected dtype torch.int32, got torch.int64"),
    ("perm", torch.arange(K // 2, dtype=torch.int32), ValueError, "perm: expected shape [K] = [256], got [128]"),
    ("perm", torch.arange(K, dtype=torch.int32).view(1, K),
     ValueError, "perm: expected shape [K] = [256], got [1, 256]"),
    ("perm", non_contiguous(torch.arange(K, dtype=torch.int32)), ValueError, "perm: expected a contiguous tensor"),
    ("bias", torch.zeros(N), TypeError, "bias: expected dtype torch.float16 (same as a), got torch.float32"),
    ("bias", torch.zeros(1, N, dtype=torch.float16), ValueError, "bias: expected shape [N] = [32], got [1, 32]"),
    ("bias", torch.zeros(N, dtype=torch.float16, device="meta"),
     ValueError, "bias: expected device cpu (same as a), got meta"),
]


@pytest.mark.parametrize(
    "name, bad, error, message", BAD_INPUTS, ids=[f"{case[0]}-{i}" for i, case in enumerate(BAD_INPUTS)]
)
def test_bad_input_is_refused_with_a_message_naming_it(name, bad, error, message):
    args = valid_args()
    args[name] = bad
    with pytest.raises(error) as info:
        check_gemm_args(**args)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{name}: ")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_valid_arguments_give_the_shape(dtype):
    assert check_gemm_args(**valid_args(dtype)) == GemmShape(m=M, k=K, n=N, group_size=G)


@pytest.mark.parametrize("optional", ["zeros", "perm", "bias"])
def test_optional_arguments_may_be_none(optional):
    args = valid_args()
    args[optional] = None
    assert check_gemm_args(**args).group_size == G


def test_channelwise_and_empty_m():
    args = valid_args()
    args.update(a=torch.zeros(0, K, dtype=torch.float16), scales=torch.ones(1, N, dtype=torch.float16),
                zeros=torch.zeros(1, N // 8, dtype=torch.int32))
    assert check_gemm_args(**args) == GemmShape(m=0, k=K, n=N, group_size=K)


def test_scales_dtype_mismatch_message_is_exact():
    args = valid_args()
    args["scales"] = args["scales"].float()
    with pytest.raises(TypeError) as info:
        check_gemm_args(**args)
    assert str(info.value) == "scales: expected dtype torch.float16 (same as a), got torch.float32"


def test_b_q_of_2_31_words_is_refused():
    """K/8 x N must stay below 2^31 words (32-bit row offsets in the kernels): meta tensors, so no
    8 GiB buffer is made; one word fewer passes."""
    def args(n: int) -> dict:
        return {"a": torch.zeros(1, 16, dtype=torch.float16, device="meta"),
                "b_q": torch.empty(2, n, dtype=torch.int32, device="meta"),
                "scales": torch.empty(1, n, dtype=torch.float16, device="meta")}

    with pytest.raises(ValueError) as info:
        check_gemm_args(**args(2**30))
    assert str(info.value) == ("b_q: expected fewer than 2^31 words K/8 x N (32-bit row offsets), "
                               "got 2 x 1073741824 = 2147483648")
    assert check_gemm_args(**args(2**30 - 8)) == GemmShape(m=1, k=16, n=2**30 - 8, group_size=16)


def _perm_with(changes: dict[int, int]) -> torch.Tensor:
    perm = torch.arange(K, dtype=torch.int32)
    for index, value in changes.items():
        perm[index] = value
    return perm


# (perm that is not a permutation of 0..K-1, end of the message)
BAD_PERMS = [
    (_perm_with({5: K}), "got perm[5] = 256"),
    (_perm_with({5: 2**31 - 1}), "got perm[5] = 2147483647"),
    (_perm_with({9: -3}), "got perm[9] = -3"),  # a[:, perm] would wrap it around to K - 3
    (_perm_with({9: -K}), "got perm[9] = -256"),
    (_perm_with({9: -(2**31)}), "got perm[9] = -2147483648"),
    (_perm_with({1: 0}), "got 0 at 2 positions"),
    (torch.zeros(K, dtype=torch.int32), "got 0 at 256 positions"),
]
PERM_IDS = ["K", "int32-max", "negative", "minus-K", "int32-min", "repeated", "all-zero"]


@pytest.mark.parametrize("perm, got", BAD_PERMS, ids=PERM_IDS)
def test_perm_that_is_not_a_permutation_is_refused(perm, got):
    with pytest.raises(ValueError) as info:
        check_perm_values(perm, K)
    assert str(info.value) == f"perm: expected a permutation of 0..255 (K = 256), {got}"


def test_permutations_and_meta_perm_pass():
    check_perm_values(torch.randperm(K).to(torch.int32), K)
    check_perm_values(torch.empty(K, dtype=torch.int32, device="meta"), K)  # no values to read


@pytest.mark.parametrize("backend", ["auto", "reference", "triton"])
@pytest.mark.parametrize("perm, got", BAD_PERMS, ids=PERM_IDS)
def test_gemm_on_the_cpu_refuses_a_perm_that_is_not_a_permutation(backend, perm, got):
    """On the CPU reading perm costs no device sync: no NaN output (Triton's gather), no IndexError
    or wrapped index (the reference's a[:, perm]), no repeated column taken as valid."""
    args = valid_args()
    args["perm"] = perm
    with pytest.raises(ValueError, match="^perm: expected a permutation of 0..255"):
        gemm(**args, backend=backend)
    with pytest.raises(ValueError, match="^perm: expected a permutation of 0..255"):
        gemm_reference(**args)


@pytest.mark.parametrize("backend", ["auto", "reference", "triton"])
@pytest.mark.parametrize("shape", [[M, 0], [0], [2, 0, 0]], ids=["M-by-0", "empty-1-D", "empty-3-D"])
def test_gemm_refuses_k_0_naming_a(backend, shape):
    args = valid_args()
    args["a"] = torch.zeros(shape, dtype=torch.float16)
    message = "a: expected K = a.shape[1] a positive multiple of 8, got K = 0"
    with pytest.raises(ValueError) as info:
        gemm(**args, backend=backend)
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        gemm_reference(**args)
    assert str(info.value) == message


def test_perm_value_check_leaves_a_fullgraph_compile_whole():
    """torch.compile traces past the value check (a branch on perm's values would break the graph)."""
    args = valid_args()
    args["perm"] = torch.randperm(K).to(torch.int32)
    args["a"] = torch.randn(M, K).half()
    compiled = torch.compile(lambda a: gemm(a, *list(args.values())[1:]), fullgraph=True, backend="eager")
    assert torch.equal(compiled(args["a"]), gemm_reference(**args))
