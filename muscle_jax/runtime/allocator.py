"""Large buffers on transparent huge pages (glibc), so that a CPU step does not fault 4 KiB pages.

glibc serves every allocation above 32 MiB with its own `mmap` and unmaps it when freed. A
training step on CPU allocates and frees the same large activation buffers every step, so
every step the kernel maps fresh 4 KiB pages and faults them in one by one: about 224,000
page faults and 0.4 CPU-seconds of kernel time per step of the pinned benchmark network
(docs/performance.md). With glibc's `glibc.malloc.hugetlb=1` tunable, glibc asks for
transparent huge pages (2 MiB) for those mappings and a step faults about 1,100 times,
with no change to how much memory the process holds.

glibc reads tunables only when a process starts, and a library must not restart its user's
command, so this is the user's choice, made in the environment:

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python -m muscle_jax.main ...

The runtime records whether it is on (`uses_huge_pages`); docs/performance.md has what it
changes on the machines it was measured on. Where the kernel's transparent huge pages are
off ("never") or glibc predates 2.35, the tunable changes nothing.

On a virtual machine whose kernel hands free memory back to its host (virtio-balloon free
page reporting), memory a step frees may be taken back between steps, and touching it again
then costs the host's page faults as well: `memory_reported_to_host_kib` reads how much the
kernel has handed back, so that a benchmark can tell such steps from slow computation.

This module needs only the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path

HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
# Free page reporting's module parameters. `reported_kib` is not in every kernel that reports.
PAGE_REPORTING_PARAMETERS = Path("/sys/module/page_reporting/parameters")


def uses_huge_pages(environ: dict[str, str] | None = None) -> bool:
    """Whether `environ` (default: this process's) sets glibc's huge-page tunable."""
    tunables = (os.environ if environ is None else environ).get("GLIBC_TUNABLES", "")
    return HUGE_PAGES_TUNABLE in tunables.split(":")


def _other_tunables(environ: dict[str, str]) -> list[str]:
    return [item for item in environ.get("GLIBC_TUNABLES", "").split(":") if item and item != HUGE_PAGES_TUNABLE]


def with_huge_pages(environ: dict[str, str]) -> dict[str, str]:
    """A copy of `environ` whose GLIBC_TUNABLES also asks for huge pages."""
    return {**environ, "GLIBC_TUNABLES": ":".join(_other_tunables(environ) + [HUGE_PAGES_TUNABLE])}


def without_huge_pages(environ: dict[str, str]) -> dict[str, str]:
    """A copy of `environ` whose GLIBC_TUNABLES does not ask for huge pages (glibc's default)."""
    return {**environ, "GLIBC_TUNABLES": ":".join(_other_tunables(environ))}


def memory_reported_to_host_kib(parameters: Path = PAGE_REPORTING_PARAMETERS) -> int | None:
    """KiB of free memory the kernel has reported to its host since boot, or None where it
    does not count them (no free page reporting, or a kernel without the counter)."""
    try:
        return int((parameters / "reported_kib").read_text())
    except (OSError, ValueError):
        return None


def page_reporting_settings(parameters: Path = PAGE_REPORTING_PARAMETERS) -> dict[str, str]:
    """Free page reporting's settings (module parameters but the running counters), {} without it."""
    counters = {"reported_kib", "passes", "walked"}
    try:
        files = sorted(path for path in parameters.iterdir() if path.name not in counters)
        return {path.name: path.read_text().strip() for path in files}
    except OSError:
        return {}
