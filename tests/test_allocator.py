"""allocator.keep_freed_memory: a freed large buffer is reused without faulting its pages in again."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]

# Allocates, touches and frees 256 MiB twice through libc; prints whether the setting took
# effect and the page faults of the second round.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, resource, sys
    sys.path.insert(0, sys.argv[2])
    from muscle_jax import allocator
    applied = allocator.keep_freed_memory() if sys.argv[1] == "keep" else False
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    size = 256 << 20

    def round_trip():
        pointer = libc.malloc(size)
        libc.memset(pointer, 1, size)
        libc.free(pointer)

    round_trip()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round_trip()
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _second_round_faults(mode: str) -> tuple[bool, int]:
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode, str(_REPO)], capture_output=True, text=True, check=True
    )
    applied, faults = completed.stdout.split()
    return applied == "True", int(faults)


def _transparent_huge_pages_always() -> bool:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.exists() and "[always]" in path.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_buffer_is_reused_without_page_faults():
    applied, faults = _second_round_faults("keep")
    assert applied
    pages = (256 << 20) // 4096
    assert faults < pages // 100, f"{faults} page faults re-touching a freed 256 MiB buffer"
    if not _transparent_huge_pages_always():  # with 2 MiB pages the default faults only ~128 times
        _, default_faults = _second_round_faults("default")
        assert default_faults > pages // 2, "the glibc default did not unmap the freed buffer: the test proves nothing"
