#!/usr/bin/env python3
"""tests/python_interop.py — do the engine's safetensors and .npy files open in Python, and Python's in ours?

Run by CTest as:  python3 tests/python_interop.py <path to the test_io binary>

1. Writes from_python.safetensors (safetensors.numpy.save_file) and from_python.npy / from_python_f32.npy
   (numpy.save) into a temp folder.
2. Runs the C++ test case "[interop]" of test_io with FM_INTEROP_DIR pointing there: it checks the Python
   files with the engine's readers and writes interop.safetensors, interop.npy and interop_f64.npy.
3. Opens those with safetensors.numpy.load_file / safe_open and numpy.load and checks values, dtypes,
   shapes and metadata (and with safetensors.torch when PyTorch is installed).

Exit codes: 0 pass, 1 fail, 77 skipped (numpy or safetensors missing; CTest reports it as skipped).
The known contents must match the "[interop]" TEST_CASE in tests/test_io.cpp.
"""
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import safetensors
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
except ImportError as error:
    print(f"SKIPPED: python_interop needs numpy and safetensors ({error}); pip install numpy safetensors")
    sys.exit(77)


def check(condition, what):
    if not condition:
        print(f"NOT OK: {what}")
        sys.exit(1)
    print(f"OK: {what}")


def check_array(actual, expected, what):
    expected = np.asarray(expected)
    check(actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} (expected {expected.dtype})")
    check(actual.shape == expected.shape, f"{what}: shape {actual.shape} (expected {expected.shape})")
    check(np.array_equal(actual, expected), f"{what}: values {actual.ravel()[:8]} ... bit-exact")


def main():
    if len(sys.argv) != 2:
        print("usage: python_interop.py <path to test_io>")
        return 2
    test_binary = sys.argv[1]
    print(f"numpy {np.__version__}, safetensors {safetensors.__version__}")

    with tempfile.TemporaryDirectory(prefix="fm_interop_") as folder:
        # ---- Python -> C++ ------------------------------------------------------------------------
        save_file(
            {
                "alpha": (np.arange(6, dtype=np.float32) / 4).reshape(2, 3),
                "beta": np.array([7, -8, 9], dtype=np.int64),
                "gamma": np.array([[1e-300, 2.0], [3.0, -4.0]], dtype=np.float64),
            },
            os.path.join(folder, "from_python.safetensors"),
            metadata={"source": "python"},
        )
        np.save(os.path.join(folder, "from_python.npy"), np.arange(6, dtype=np.float64).reshape(3, 2) * 0.5)
        np.save(os.path.join(folder, "from_python_f32.npy"), np.array([-1, 0, 1, 2], dtype=np.float32))

        environment = dict(os.environ, FM_INTEROP_DIR=folder)
        run = subprocess.run([test_binary, "[interop]"], env=environment, capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout)
            print(run.stderr)
        check(run.returncode == 0, f"{os.path.basename(test_binary)} [interop] read the Python files and wrote its own")

        # ---- C++ -> Python ------------------------------------------------------------------------
        st_path = os.path.join(folder, "interop.safetensors")
        with open(st_path, "rb") as f:
            raw = f.read()
        header_length = struct.unpack("<Q", raw[:8])[0]
        check(header_length % 8 == 0, f"header length {header_length} is a multiple of 8")
        check(raw[8 + header_length - 1:8 + header_length] in (b"}", b" "), "header is padded with spaces")

        tensors = load_file(st_path)
        check(sorted(tensors) == ["empty", "layer.bias", "layer.weight", "mask", "step"], f"tensor names {sorted(tensors)}")
        check_array(tensors["layer.weight"], (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3), "layer.weight")
        check_array(tensors["layer.bias"], np.array([1.5, -2.25, 1e-300], dtype=np.float64), "layer.bias")
        check_array(tensors["step"], np.array(12345, dtype=np.int64), "step (a 0-d scalar)")
        check_array(tensors["mask"], np.array([0, 1, 254, 255], dtype=np.uint8), "mask")
        check_array(tensors["empty"], np.zeros((0, 2), dtype=np.float32), "empty")
        with safe_open(st_path, framework="np") as f:
            metadata = f.metadata()
        expected_metadata = {"format": "pt", "epoch": "3", "note": "na\u00efve \u2713"}
        check(metadata == expected_metadata, f"metadata {metadata}")

        cube = np.load(os.path.join(folder, "interop.npy"))
        check_array(cube, (np.arange(24, dtype=np.float32) * 0.25 - 1).reshape(2, 3, 4), "interop.npy")
        check(cube.flags["C_CONTIGUOUS"], "interop.npy is C order")
        line = np.load(os.path.join(folder, "interop_f64.npy"))
        check_array(line, np.array([0.1, 0.2, 1e-310, -7.0, 3.141592653589793]), "interop_f64.npy")

        try:
            import torch
            from safetensors.torch import load_file as load_torch
        except ImportError:
            print("(PyTorch not installed: the safetensors.torch check is left out)")
        else:
            weights = load_torch(st_path)
            check(weights["layer.weight"].dtype == torch.float32 and tuple(weights["layer.weight"].shape) == (2, 3),
                  "safetensors.torch opens the checkpoint")
    print("python_interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
