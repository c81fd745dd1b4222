"""allocator: glibc's huge-page tunable, set in the environment by the user, makes large buffers
fault in far fewer pages, and the runtime records whether it is set."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from muscle_jax import runtime
from muscle_jax.runtime import allocator

_REPO = Path(__file__).resolve().parents[1]

# Allocates and touches 256 MiB through libc; prints GLIBC_TUNABLES as the process sees it,
# what the runtime records, and the page faults.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, json, os, resource, sys
    sys.path.insert(0, sys.argv[1])
    from muscle_jax.runtime import allocator
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    libc.memset(libc.malloc(256 << 20), 1, 256 << 20)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps([os.environ.get("GLIBC_TUNABLES", ""), allocator.uses_huge_pages(), faults]))
    """
)


def _run(huge_pages: bool) -> tuple[str, bool, int]:
    environ = allocator.without_huge_pages(dict(os.environ))
    if huge_pages:
        environ = allocator.with_huge_pages(environ)
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(_REPO)], capture_output=True, text=True, check=True, env=environ,
    )
    tunables, recorded, faults = json.loads(completed.stdout)
    return tunables, recorded, faults


def _transparent_huge_pages() -> str:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not path.exists():
        return "unknown"
    return path.read_text().split("[")[1].split("]")[0]


def test_tunables_are_added_once_and_keep_what_was_there():
    environ = allocator.with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/x"})
    assert environ == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "HOME": "/x"}
    assert allocator.uses_huge_pages(environ)
    assert allocator.with_huge_pages(environ) == environ
    assert not allocator.uses_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
    assert allocator.without_huge_pages(environ) == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/x"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_with_the_tunable_in_the_environment_large_buffers_fault_far_less_and_it_is_recorded():
    tunables, recorded, huge_faults = _run(huge_pages=True)
    assert tunables.split(":")[-1] == allocator.HUGE_PAGES_TUNABLE and recorded
    plain_tunables, plain_recorded, plain_faults = _run(huge_pages=False)
    assert allocator.HUGE_PAGES_TUNABLE not in plain_tunables and not plain_recorded
    pages = (256 << 20) // 4096
    assert plain_faults > pages // 2 or _transparent_huge_pages() == "always"
    if _transparent_huge_pages() == "madvise":  # where glibc's madvise can take effect
        assert huge_faults < pages // 20, f"{huge_faults} page faults touching 256 MiB with huge pages"


def test_page_reporting_counter_and_settings_are_read_or_absent(tmp_path):
    parameters = tmp_path / "parameters"
    assert allocator.memory_reported_to_host_kib(parameters) is None  # no free page reporting
    assert allocator.page_reporting_settings(parameters) == {}
    parameters.mkdir()
    (parameters / "page_reporting_order").write_text("9\n")
    assert allocator.memory_reported_to_host_kib(parameters) is None  # a kernel without the counter
    (parameters / "reported_kib").write_text("625778236\n")
    (parameters / "passes").write_text("3926\n")
    assert allocator.memory_reported_to_host_kib(parameters) == 625778236
    assert allocator.page_reporting_settings(parameters) == {"page_reporting_order": "9"}
    (parameters / "reported_kib").write_text("")
    assert allocator.memory_reported_to_host_kib(parameters) is None


def test_the_runtime_records_the_environment_s_choice(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", allocator.HUGE_PAGES_TUNABLE)
    assert runtime.resolve(runtime.default_settings()).huge_pages
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert not runtime.resolve(runtime.default_settings()).huge_pages
