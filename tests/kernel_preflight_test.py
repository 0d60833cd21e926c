#!/usr/bin/env python3
"""tests/kernel_preflight_test.py — the arithmetic and parsing of tools/kernel_preflight.py, on made-up kernels.

The tool's real run (every kernel of kernels/cuda/ against every launch of the emulated tests) needs
a CUDA build and the emulator's launch log, and is a step of `tools/bootstrap.sh test`. This checks
the parts that decide pass or fail, with answers worked out by hand from the SM limits (sm_90: 64 Ki
registers per SM in 4 sub-partitions, allocated to warps in units of 256; 228 KiB of shared memory per
SM, 1 KiB reserved per block; 2048 threads and 32 blocks per SM), each with a case that must fail.

Run by CTest as: python3 tests/kernel_preflight_test.py
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import kernel_preflight as kp  # noqa: E402

SM90 = kp.SM_LIMITS["sm_90"]

PTXAS_SAMPLE = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z4widev' for 'sm_90'
ptxas info    : Function properties for _Z4widev
    272 bytes stack frame, 4 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 128 registers, used 1 barriers, 272 bytes cumulative stack size, 17408 bytes smem
ptxas info    : Compile time = 60.1 ms
ptxas info    : Compiling entry function '_Z5plainv' for 'sm_90a'
ptxas info    : Function properties for _Z5plainv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 36 registers, used 0 barriers
"""

PTX_SAMPLE = """\
.visible .entry _Z4widev(
	.param .align 8 .b8 _Z4widev_param_0[16]
)
.maxntid 256, 1, 1
.minnctapersm 2
{
	ret;
}
.visible .entry _Z5plainv()
{
	ret;
}
.visible .entry _Z4cubev()
.maxntid 8, 8, 4
{
	ret;
}
"""


def kernel(registers=32, static_shared=0, max_threads=0, min_blocks=0, name="k"):
    return kp.Kernel(mangled=name, arch="sm_90", registers=registers, static_shared=static_shared,
                     max_threads=max_threads, min_blocks=min_blocks, name=name)


class Parsing(unittest.TestCase):
    def test_ptxas_report(self):
        wide, plain = kp.parse_ptxas(PTXAS_SAMPLE, source="x.cu")
        self.assertEqual((wide.mangled, wide.arch, wide.registers, wide.barriers), ("_Z4widev", "sm_90", 128, 1))
        self.assertEqual((wide.static_shared, wide.stack_frame, wide.spill_stores, wide.spill_loads), (17408, 272, 4, 8))
        # sm_90a is sm_90 for limits; no smem clause means none.
        self.assertEqual((plain.arch, plain.registers, plain.static_shared, plain.barriers), ("sm_90", 36, 0, 0))

    def test_launch_bounds_from_ptx(self):
        bounds = kp.parse_ptx_bounds(PTX_SAMPLE)
        self.assertEqual(bounds["_Z4widev"], (256, 2))
        self.assertEqual(bounds["_Z5plainv"], (0, 0))
        self.assertEqual(bounds["_Z4cubev"], (256, 0))  # 8 × 8 × 4

    def test_short_name(self):
        self.assertEqual(kp.short_name("void fm::kernels::(anonymous namespace)::k<fm::bf16, (x)2>(float const*, int)"),
                         "k<bf16, (x)2>")


class Occupancy(unittest.TestCase):
    def test_registers_limit_a_wide_tile(self):
        # 128 registers × 32 lanes = 4096 per warp; 16384 per sub-partition hold 4 warps, 16 per SM:
        # two 8-warp blocks. Shared: 17408 + 1024 reserved = 18432 B, 12 would fit.
        self.assertEqual(kp.blocks_per_sm(kernel(128, 17408), 256, 0, SM90), (2, "registers"))

    def test_a_1024_thread_block_needs_64_registers_or_fewer(self):
        self.assertEqual(kp.blocks_per_sm(kernel(64), 1024, 0, SM90), (1, "registers"))
        # 65 registers round up to 72 per thread (2304 per warp): 32 warps need 73728 > 65536.
        self.assertEqual(kp.blocks_per_sm(kernel(65), 1024, 0, SM90), (0, "registers"))

    def test_registers_are_shared_out_per_sub_partition(self):
        # 200 registers: 6400 per warp; a sub-partition's 16384 hold 2 warps (not 2.56), so 8 warps
        # per SM, four 2-warp blocks, where 65536 / (2 × 6400) alone would say 5.
        self.assertEqual(kp.blocks_per_sm(kernel(200), 64, 0, SM90), (4, "registers"))

    def test_shared_memory_and_thread_limits(self):
        # 100 KiB static + 1 KiB reserved: 2 blocks in 228 KiB.
        self.assertEqual(kp.blocks_per_sm(kernel(16, 100 * 1024), 128, 0, SM90), (2, "shared memory"))
        # Tiny kernels: 2048 threads per SM allow 8 blocks of 256.
        self.assertEqual(kp.blocks_per_sm(kernel(16), 256, 0, SM90), (8, "threads"))
        # 32 threads: the 32-blocks-per-SM cap.
        self.assertEqual(kp.blocks_per_sm(kernel(16), 32, 0, SM90), (32, "blocks"))


class Checks(unittest.TestCase):
    def run_check(self, kernels, launches):
        findings = kp.Findings()
        kp.check(kernels, launches, findings)
        return findings

    def test_a_fitting_launch_passes(self):
        findings = self.run_check([kernel(128, 17408, 256, 2)], [kp.Launch("k", 256, 0, -1)])
        self.assertEqual(findings.failures, [])

    def test_more_threads_than_launch_bounds_fails(self):
        findings = self.run_check([kernel(32, 0, 256)], [kp.Launch("k", 512, 0, -1)])
        self.assertEqual(len(findings.failures), 1)
        self.assertIn("__launch_bounds__ (256)", findings.failures[0])

    def test_too_many_registers_for_the_block_fails(self):
        findings = self.run_check([kernel(65)], [kp.Launch("k", 1024, 0, -1)])
        self.assertEqual(len(findings.failures), 1, findings.failures)  # said once
        self.assertIn("registers per thread do not fit", findings.failures[0])

    def test_dynamic_shared_memory_needs_the_opt_in(self):
        # 16 KiB static leaves 32 KiB dynamic without cudaFuncSetAttribute: 40 KiB fails, as on a GPU,
        # although it is under the 48 KiB the emulator alone can check.
        k = kernel(32, 16 * 1024)
        findings = self.run_check([k], [kp.Launch("k", 128, 40 * 1024, -1)])
        self.assertTrue(any("cudaFuncSetAttribute never called" in f for f in findings.failures), findings.failures)
        self.assertEqual(self.run_check([k], [kp.Launch("k", 128, 40 * 1024, 64 * 1024)]).failures, [])
        # An opt-in cannot reach past the block limit less the static memory: the raise itself fails.
        findings = self.run_check([k], [kp.Launch("k", 128, 220 * 1024, 227 * 1024)])
        self.assertTrue(any("the call itself fails" in f for f in findings.failures), findings.failures)
        self.assertTrue(any("dynamic shared memory over" in f for f in findings.failures), findings.failures)
        self.assertEqual(self.run_check([k], [kp.Launch("k", 128, 200 * 1024, 211 * 1024)]).failures, [])

    def test_a_broken_min_blocks_promise_fails(self):
        # __launch_bounds__(128, 3) with 80 KiB static: 228 // 81 = 2 blocks fit, not 3.
        findings = self.run_check([kernel(32, 80 * 1024, 128, 3)], [])
        self.assertEqual(len(findings.failures), 1)
        self.assertIn("asks 3 blocks per SM, only 2 fit", findings.failures[0])
        # The same promise with the dynamic memory a test launched it with.
        findings = self.run_check([kernel(32, 0, 128, 3)], [kp.Launch("k", 128, 80 * 1024, 100 * 1024)])
        self.assertIn("only 2 fit", " ".join(findings.failures))

    def test_spills_are_notes_not_failures(self):
        k = kernel(128)
        k.spill_stores = k.spill_loads = 4
        findings = self.run_check([k], [])
        self.assertEqual((len(findings.failures), len(findings.warnings)), (0, 1))

    def test_launches_join_kernels_by_name_only(self):
        seen = kp.check([kernel(32, name="a"), kernel(32, name="b")], [kp.Launch("a", 64, 0, -1)], kp.Findings())
        self.assertEqual(list(seen), [("a", "sm_90")])


class Names(unittest.TestCase):
    def test_aliases_at_one_address(self):
        self.assertEqual(kp.name_at(["_Z1kv", "_Z1kv.localalias"]), "_Z1kv")
        self.assertIsNone(kp.name_at(["_Z1kv", "_Z1jv"]))  # two functions folded into one: ambiguous

    def test_a_callees_frame_is_not_the_entrys(self):
        text = PTXAS_SAMPLE.replace("Function properties for _Z5plainv", "Function properties for _Z6calleev")
        plain = kp.parse_ptxas(text)[1]
        self.assertEqual((plain.stack_frame, plain.spill_stores), (0, 0))
        text = PTXAS_SAMPLE.replace("    0 bytes stack frame, 0 bytes spill stores", "    64 bytes stack frame, 8 bytes spill stores")
        text = text.replace("Function properties for _Z5plainv", "Function properties for _Z6calleev")
        self.assertEqual(kp.parse_ptxas(text)[1].stack_frame, 0)

    def test_two_files_with_one_kernel_name_fail(self):
        a, b = kernel(name="k"), kernel(name="k")
        a.source, b.source = "one.cu", "two.cu"
        findings = kp.Findings()
        kp.check([a, b], [], findings)
        self.assertIn("a launch cannot be told apart", " ".join(findings.failures))


class LaunchLog(unittest.TestCase):
    def test_a_malformed_line_is_refused(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write("/bin/true\t10\t0\t128\n")
        try:
            with self.assertRaisesRegex(ValueError, "expected 6 tab-separated fields, got 4"):
                kp.read_launch_log(f.name)
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
