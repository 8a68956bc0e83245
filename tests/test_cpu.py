"""The CPU beside every latency: its features are read with archspec (here from fabricated
/proc/cpuinfo texts and a fabricated Apple chip), classified by qlab's per-feature table, and
carried by the tables. No assertion here is about which data type is faster: that is the CPU's."""

import archspec.cpu
import archspec.cpu.detect as detect
import pandas as pd
import pytest

from qlab.perf import bench, cpu
from qlab.tflite import measure

EPYC_AVX2 = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
    "nonstop_tsc cpuid pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave "
    "avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse "
    "3dnowprefetch osvw topoext ssbd ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 avx2 smep "
    "bmi2 rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 clzero xsaveerptr arat "
    "npt nrip_save umip rdpid"
)
XEON_VNNI = EPYC_AVX2.replace(
    "avx2", "avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni"
)
NEOVERSE_N1 = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
    "asimddp ssbs"
)


@pytest.fixture
def fake_host(monkeypatch):
    """Make archspec read a /proc/cpuinfo given as text, on the architecture given; qlab's
    cached reading of the CPU is cleared before and after."""

    def use(architecture: str, text: str):
        class File:
            def __enter__(self):
                return iter(text.splitlines(keepends=True))

            def __exit__(self, *exc):
                return False

        monkeypatch.setattr(detect, "open", lambda *args, **kwargs: File(), raising=False)
        monkeypatch.setattr(detect, "_machine", lambda: architecture)
        archspec.cpu.host.cache_clear()
        measure._cpu.cache_clear()
        return measure.machine()

    yield use
    archspec.cpu.host.cache_clear()
    measure._cpu.cache_clear()


def proc_cpuinfo(architecture: str, flags: str) -> str:
    """The first processor's block of /proc/cpuinfo, as Linux writes it on x86 and on aarch64."""
    if architecture == "x86_64":
        return (
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: a CPU\nflags\t\t: "
            f"{flags}\n\n"
        )
    return f"processor\t: 0\nFeatures\t: {flags}\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n\n"


@pytest.mark.parametrize(
    "architecture, flags, path, shown",
    [
        ("x86_64", EPYC_AVX2, "AVX2 (no VNNI)", "avx2 fma"),
        ("x86_64", XEON_VNNI, "AVX-512 VNNI", "avx512_vnni avx512f avx2 fma"),
        ("aarch64", NEOVERSE_N1, "ARM dot product", "asimddp asimd"),
    ],
    ids=["epyc-avx2", "xeon-avx512-vnni", "neoverse-n1"],
)
def test_features_are_read_by_archspec_from_proc_cpuinfo(
    fake_host, architecture, flags, path, shown
):
    machine = fake_host(architecture, proc_cpuinfo(architecture, flags))
    assert set(flags.split()) <= set(machine["cpu_flags"])  # archspec adds aliases (pni: sse3)
    described = cpu.describe(machine)
    assert described["cpu_features"] == shown and described["int8_path"] == path
    assert described["meaning"] == cpu.meaning(path)


def test_apple_silicon_takes_the_features_of_its_chip(monkeypatch):
    """macOS names an Apple chip but reports no flags: archspec's table of that chip gives them."""
    monkeypatch.setattr(
        detect, "detected_info", lambda: detect.partial_uarch(name="m2", vendor="Apple")
    )
    monkeypatch.setattr(archspec.cpu, "host", lambda: archspec.cpu.TARGETS["m2"])
    measure._cpu.cache_clear()
    try:
        machine = measure.machine()
    finally:
        measure._cpu.cache_clear()
    assert machine["cpu_uarch"] == "m2" and cpu.describe(machine)["int8_path"] == "ARM i8mm"


def test_this_machine_is_read_and_classified():
    machine = measure.machine()
    assert machine["cpu"] and isinstance(machine["cpu_flags"], tuple)
    if machine["architecture"] in ("x86_64", "aarch64") and machine["cpu_flags"]:
        with open("/proc/cpuinfo") as f:
            key = "flags" if machine["architecture"] == "x86_64" else "Features"
            line = next(ln for ln in f if ln.split(":")[0].strip() == key)
        assert set(line.split(":", 1)[1].split()) <= set(machine["cpu_flags"])
    assert cpu.describe(machine)["int8_path"] in {row["path"] for row in cpu.FEATURES.values()} | {
        cpu.UNKNOWN
    }


@pytest.mark.parametrize(
    "flags, path",
    [
        ({"avx", "avx2", "fma"}, "AVX2 (no VNNI)"),
        ({"avx2", "fma", "avx512f"}, "AVX-512 (no VNNI)"),
        ({"avx2", "fma", "avx512f", "avx512_vnni"}, "AVX-512 VNNI"),
        ({"avx2", "fma", "avx_vnni"}, "AVX-VNNI"),
        ({"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}, "AMX"),
        ({"fp", "asimd"}, "ARM NEON only"),
        ({"fp", "asimd", "asimddp"}, "ARM dot product"),
        ({"fp", "asimd", "asimddp", "i8mm"}, "ARM i8mm"),
        ({"sse2", "sse4_2"}, cpu.UNKNOWN),
        (set(), cpu.UNKNOWN),
    ],
)
def test_the_int8_path_is_the_best_feature_in_the_table(flags, path):
    assert cpu.int8_path(flags) == path
    assert cpu.meaning(path)
    assert cpu.features(flags) == [f for f in cpu.FEATURES if f in flags]  # the table's order


def test_every_feature_says_what_it_does_for_int8_and_every_path_means_something():
    for flag, row in cpu.FEATURES.items():
        assert row["isa"] in ("x86", "arm") and row["name"] and row["int8"], flag
        assert bool(row["path"]) == bool(row["meaning"]), flag
    paths = [row["path"] for row in cpu.FEATURES.values() if row["path"]]
    assert len(paths) == len(set(paths))
    with pytest.raises(ValueError, match="unknown int8 path"):
        cpu.meaning("SSE")


def test_columns_and_the_line_above_a_table():
    machine = {"cpu": "AMD EPYC 7B12", "cpu_uarch": "zen2", "cpu_flags": tuple(EPYC_AVX2.split())}
    row = cpu.columns("xnnpack", 1, machine)
    assert row == {
        "cpu": "AMD EPYC 7B12 (archspec's nearest: zen2)",
        "cpu_features": "avx2 fma",
        "int8_path": "AVX2 (no VNNI)",
        "kernels": "xnnpack",
        "threads": 1,
    }
    assert set(cpu.columns(None, None, machine)) == set(cpu.MACHINE_COLUMNS)
    table = cpu.with_columns(pd.DataFrame({"latency_us": [1.0, 2.0]}), "builtin", 2, machine)
    assert (
        table.cpu.nunique() == 1
        and (table.kernels == "builtin").all()
        and (table.threads == 2).all()
    )
    text = cpu.line(table)
    assert text.startswith(
        "CPU: AMD EPYC 7B12 (archspec's nearest: zen2); int8 features: AVX2, FMA; int8 path: "
        "AVX2 (no VNNI)"
    )
    assert text.endswith("LiteRT kernels: builtin, 2 threads.")
    other = cpu.with_columns(
        pd.DataFrame({"latency_us": [3.0]}),
        "builtin",
        2,
        {"cpu": "Xeon", "cpu_flags": tuple(XEON_VNNI.split())},
    )
    both = pd.concat([table, other])
    assert (
        " | " in cpu.line(both)
        and cpu.carried(both)["int8_path"] == "AVX2 (no VNNI) | AVX-512 VNNI"
    )
    assert "none that qlab knows" in cpu.line(machine={"cpu": "?", "cpu_flags": ()})


@pytest.mark.parametrize(
    "low, high, verdict",
    [
        (0.4, 0.5, "faster"),
        (1.3, 1.4, "slower"),
        (0.97, 1.04, "same"),
        (0.9, 1.2, "mixed"),
        (0.96, 1.2, "mixed"),
    ],
)
def test_verdict_from_the_rounds(low, high, verdict):
    assert bench.verdict(low, high) == verdict


def test_flags_in_any_case_or_as_the_column_stores_them():
    assert cpu.int8_path("avx2 fma") == "AVX2 (no VNNI)"  # the cpu_features column's spelling
    assert cpu.int8_path(["AVX512_VNNI", "AVX2"]) == "AVX-512 VNNI"
    assert cpu.features("") == [] and cpu.int8_path("") == cpu.UNKNOWN
