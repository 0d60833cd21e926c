#!/usr/bin/env python3
# tests/bad_inputs/make_bad_inputs.py — remakes the binary files of the bad-input corpus
# (tests/bad_inputs/, read by tests/test_bad_inputs.cpp through cases.tsv). Plain Python, no numpy.
#
#   python3 tests/bad_inputs/make_bad_inputs.py [--fmtrain build/bin/fmtrain]
#
# With --fmtrain it first trains the tiny moons run of good/moons_tiny.json (a second) and keeps its
# config.json, metrics.jsonl and checkpoint.safetensors as good_run/; without it, the checked-in
# good_run/ is reused. Every broken checkpoint is then derived from good_run/checkpoint.safetensors,
# so its tensor names and shapes are the ones the current model writes; remake the files with
# --fmtrain when the model's parameters or the checkpoint's layout change. The IDX and .npy files are
# written from scratch. The output is deterministic (gzip mtime 0, fixed pixel patterns).
#
# The JSON configs under configs/ are hand-written, not generated.
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(relative, data):
    path = os.path.join(HERE, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------------------------------

def read_safetensors(path):
    """Returns (metadata, [(name, dtype, shape, bytes)] in data-offset order)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
    return metadata, [(name, e["dtype"], e["shape"], data[e["data_offsets"][0]:e["data_offsets"][1]])
                      for name, e in tensors]


def header_text(metadata, entries):
    """entries: [(name, {dtype, shape, data_offsets})]; compact JSON padded to a multiple of 8, as ours."""
    parts = ['"__metadata__":' + json.dumps(metadata, separators=(",", ":"))] if metadata is not None else []
    parts += [json.dumps(name) + ":" + json.dumps(entry, separators=(",", ":")) for name, entry in entries]
    text = "{" + ",".join(parts) + "}"
    return text + " " * ((8 - len(text) % 8) % 8)


def encode_safetensors(metadata, tensors, edit_entry=None):
    """tensors: [(name, dtype, shape, bytes)], packed in order. edit_entry(name, entry) may change an
    entry after its offsets were computed (to break them)."""
    entries, offset, data = [], 0, b""
    for name, dtype, shape, payload in tensors:
        entry = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        if edit_entry:
            edit_entry(name, entry)
        entries.append((name, entry))
        offset += len(payload)
        data += payload
    text = header_text(metadata, entries).encode()
    return struct.pack("<Q", len(text)) + text + data


def make_checkpoints(good_path):
    metadata, tensors = read_safetensors(good_path)
    good = encode_safetensors(metadata, tensors)
    with open(good_path, "rb") as f:
        assert f.read() == good, "re-encoding the good checkpoint should give the same bytes"
    config = json.loads(metadata["config"])
    model_names = [name for name, *_ in tensors if name.startswith("model.")]
    first_weight = next(name for name in model_names if name.endswith("weight"))
    (n,) = struct.unpack("<Q", good[:8])
    data_size = len(good) - 8 - n
    out = {}

    # The container: lengths, header, offsets.
    out["empty"] = b""
    out["truncated_length"] = good[:5]
    out["truncated_header"] = good[:8 + n // 2]
    out["truncated_data"] = good[:-100]
    out["header_length_huge"] = struct.pack("<Q", 1 << 40) + good[8:]
    out["header_length_past_end"] = struct.pack("<Q", len(good)) + good[8:]
    out["header_length_one"] = struct.pack("<Q", 1) + good[8:]
    out["header_not_json"] = good[:8] + b"{" + b"x" * (n - 1) + good[8 + n:]
    out["header_not_object"] = good[:8] + b"[" + b" " * (n - 2) + b"]" + good[8 + n:]
    out["not_safetensors"] = json.dumps(config, indent=2).encode()  # a config file given as a checkpoint

    def overlap(name, entry):
        if name == tensors[1][0]:
            entry["data_offsets"] = [entry["data_offsets"][0] - 4, entry["data_offsets"][1] - 4]
    out["overlapping_offsets"] = encode_safetensors(metadata, tensors, overlap)

    def past_end(name, entry):
        if name == tensors[-1][0]:
            entry["data_offsets"] = [data_size + 64, data_size + 64 + entry["data_offsets"][1] - entry["data_offsets"][0]]
    out["offsets_past_end"] = encode_safetensors(metadata, tensors, past_end)

    def negative(name, entry):
        if name == tensors[0][0]:
            entry["data_offsets"] = [-8, entry["data_offsets"][1]]
    out["negative_offset"] = encode_safetensors(metadata, tensors, negative)

    def wrong_span(name, entry):
        if name == first_weight:
            entry["shape"] = [entry["shape"][0] + 1] + entry["shape"][1:]
    out["span_mismatch"] = encode_safetensors(metadata, tensors, wrong_span)

    out["trailing_bytes"] = good + b"\0" * 16
    out["gap"] = _gap_file(metadata, tensors)

    # Entries: dtype, names, metadata.
    out["wrong_dtype"] = encode_safetensors(metadata, [(name, "I32" if name == first_weight else dtype, shape, payload)
                                                       for name, dtype, shape, payload in tensors])
    out["unknown_dtype"] = encode_safetensors(metadata, [(name, "F33" if name == first_weight else dtype, shape, payload)
                                                         for name, dtype, shape, payload in tensors])
    dup = header_text(metadata, [(tensors[0][0], {"dtype": tensors[0][1], "shape": tensors[0][2],
                                                  "data_offsets": [0, len(tensors[0][3])]})] * 2).encode()
    out["duplicate_name"] = struct.pack("<Q", len(dup)) + dup + tensors[0][3]
    missing = {first_weight, "ema." + first_weight[len("model."):]}
    out["missing_tensor"] = encode_safetensors(metadata, [t for t in tensors if t[0] not in missing])
    out["extra_tensor"] = encode_safetensors(metadata, tensors + [("model.extra.weight", "F32", [2], b"\0" * 8),
                                                                  ("ema.extra.weight", "F32", [2], b"\0" * 8)])
    out["stray_tensor"] = encode_safetensors(metadata, tensors + [("notes", "F32", [1], b"\0" * 4)])
    out["no_ema"] = encode_safetensors(metadata, [t for t in tensors if not t[0].startswith("ema.")])
    out["no_step"] = encode_safetensors(metadata, [t for t in tensors if t[0] != "trainer.step"])
    # The older format: a xoshiro256** generator's six state words in place of the noise seed.
    out["old_generator"] = encode_safetensors(
        metadata, [t for t in tensors if t[0] != "trainer.seed"] +
        [("trainer.generator", "U64", [6], struct.pack("<6Q", 1, 2, 3, 4, 0, 0))])
    no_config = {k: v for k, v in metadata.items() if k != "config"}
    out["no_config"] = encode_safetensors(no_config, tensors)
    out["config_not_json"] = encode_safetensors(dict(metadata, config="{\"data\": "), tensors)
    bad_key = json.loads(metadata["config"])
    bad_key["trian"] = {"steps": 3}
    out["config_unknown_key"] = encode_safetensors(dict(metadata, config=json.dumps(bad_key)), tensors)
    wider = json.loads(metadata["config"])
    wider["model"]["hidden_width"] = 2 * wider["model"]["hidden_width"]
    out["shape_mismatch"] = encode_safetensors(dict(metadata, config=json.dumps(wider)), tensors)
    out["metadata_not_string"] = _metadata_number(metadata, tensors)
    # A run saved after it had diverged: a NaN in the first weight, raw and EMA copies alike.
    nan_names = {first_weight, "ema." + first_weight[len("model."):]}
    out["nan_weight"] = encode_safetensors(metadata, [
        (name, dtype, shape, struct.pack("<I", 0x7FC00000) + payload[4:] if name in nan_names else payload)
        for name, dtype, shape, payload in tensors])
    # Not broken: a class-conditional model (the refusals of --class, --grid-by-class, guidance weights).
    out["conditional"] = _conditional_file(metadata, tensors, first_weight[len("model."):])
    for name, data in out.items():
        write(os.path.join("checkpoints", name + ".safetensors"), data)


def _gap_file(metadata, tensors):
    """The second tensor starts 8 bytes after the first ends (8 unused bytes between them)."""
    entries, offset, data = [], 0, b""
    for i, (name, dtype, shape, payload) in enumerate(tensors):
        if i == 1:
            offset += 8
            data += b"\0" * 8
        entries.append((name, {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}))
        offset += len(payload)
        data += payload
    text = header_text(metadata, entries).encode()
    return struct.pack("<Q", len(text)) + text + data


def _metadata_number(metadata, tensors):
    entries, offset = [], 0
    for name, dtype, shape, payload in tensors:
        entries.append((name, {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}))
        offset += len(payload)
    text = header_text(None, entries)
    meta = json.dumps(dict(metadata), separators=(",", ":"))[:-1] + ',"note":7}'
    text = '{"__metadata__":' + meta + "," + text.strip()[1:]
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + b"".join(t[3] for t in tensors)


def _conditional_file(metadata, tensors, first_layer, embedding_dim=2):
    """The good checkpoint as a class-conditional model (model.num_classes = the data's classes): the
    first layer's weights (and their Adam moments) get embedding_dim more input columns, zero, so the
    labels change nothing; model./ema. class_embedding [classes + 1, embedding_dim] and its Adam state."""
    config = json.loads(metadata["config"])
    classes = {"moons": 2, "8gaussians": 8}[config["data"]["name"]]
    config["model"]["num_classes"] = classes
    config["model"]["class_embedding_dim"] = embedding_dim
    out = []
    for name, dtype, shape, payload in tensors:
        if first_layer in name and name.split(first_layer)[1] in ("", ".exp_avg", ".exp_avg_sq"):
            rows, cols = shape
            row_bytes = 4 * cols
            payload = b"".join(payload[r * row_bytes:(r + 1) * row_bytes] + b"\0" * (4 * embedding_dim)
                               for r in range(rows))
            shape = [rows, cols + embedding_dim]
        out.append((name, dtype, shape, payload))
    count = (classes + 1) * embedding_dim
    table = struct.pack("<%df" % count, *[0.1 * (i + 1) for i in range(count)])
    step = next(payload for name, _, _, payload in tensors if name.endswith(".step"))
    out += [("model.class_embedding", "F32", [classes + 1, embedding_dim], table),
            ("ema.class_embedding", "F32", [classes + 1, embedding_dim], table),
            ("optim.class_embedding.exp_avg", "F32", [classes + 1, embedding_dim], b"\0" * (4 * count)),
            ("optim.class_embedding.exp_avg_sq", "F32", [classes + 1, embedding_dim], b"\0" * (4 * count)),
            ("optim.class_embedding.step", "F64", [], step)]
    return encode_safetensors(dict(metadata, config=json.dumps(config)), sorted(out))


# ---- IDX ----------------------------------------------------------------------------------------------

def idx_images(count, rows, cols, magic=0x00000803, seed=0):
    pixels = bytes((seed * 91 + i * 37 + (k // cols) * 7 + (k % cols) * 3) % 256
                   for i in range(count) for k in range(rows * cols))
    return struct.pack(">IIII", magic, count, rows, cols) + pixels


def idx_labels(count, magic=0x00000801):
    return struct.pack(">II", magic, count) + bytes(i % 10 for i in range(count))


def gz(data):
    return gzip.compress(data, mtime=0)


def make_idx():
    good = {"train-images-idx3-ubyte.gz": gz(idx_images(8, 28, 28)),
            "train-labels-idx1-ubyte.gz": gz(idx_labels(8)),
            "t10k-images-idx3-ubyte.gz": gz(idx_images(8, 28, 28, seed=1)),
            "t10k-labels-idx1-ubyte.gz": gz(idx_labels(8))}
    for name, data in good.items():
        write(os.path.join("idx", "good", name), data)

    # Single image files, for fmtrain (data.dir = idx/files, data.images = the file).
    images = idx_images(8, 28, 28)
    files = {
        "empty.gz": b"",
        "labels_as_images.gz": gz(idx_labels(8)),
        "wrong_magic.gz": gz(idx_images(8, 28, 28, magic=0x00000C03)),
        "header_truncated.gz": gz(images[:10]),
        "truncated_pixels.gz": gz(images[:16 + 5 * 784]),
        "trailing_bytes.gz": gz(images + b"\0" * 100),
        "zero_images.gz": gz(struct.pack(">IIII", 0x803, 0, 28, 28)),
        "zero_rows.gz": gz(struct.pack(">IIII", 0x803, 8, 0, 28)),
        "huge_rows.gz": gz(struct.pack(">IIII", 0x803, 1, 70000, 1) + b"\0" * 70000),
        "truncated_gzip.gz": gz(images)[:200],
        "plain_truncated": images[:-300],  # not compressed: zlib passes plain files through
    }
    for name, data in files.items():
        write(os.path.join("idx", "files", name), data)

    # Data folders with images and labels, for fmeval (train-classifier reads train, then t10k).
    folders = {
        "label_count_mismatch": {"train-images-idx3-ubyte.gz": gz(idx_images(8, 28, 28)),
                                 "train-labels-idx1-ubyte.gz": gz(idx_labels(6))},
        "labels_wrong_magic": {"train-images-idx3-ubyte.gz": gz(idx_images(8, 28, 28)),
                               "train-labels-idx1-ubyte.gz": gz(idx_images(8, 28, 28))},
        "missing_labels": {"train-images-idx3-ubyte.gz": gz(idx_images(8, 28, 28))},
        "t10k_truncated_labels": dict(good, **{"t10k-labels-idx1-ubyte.gz": gz(idx_labels(8)[:12])}),
        "small_images": {"train-images-idx3-ubyte.gz": gz(idx_images(8, 12, 12)),
                         "train-labels-idx1-ubyte.gz": gz(idx_labels(8)),
                         "t10k-images-idx3-ubyte.gz": gz(idx_images(8, 12, 12, seed=1)),
                         "t10k-labels-idx1-ubyte.gz": gz(idx_labels(8))},
    }
    for folder, contents in folders.items():
        for name, data in contents.items():
            write(os.path.join("idx", folder, name), data)


# ---- .npy ---------------------------------------------------------------------------------------------

def npy(shape, descr="<f4", fortran=False, data=None, version=(1, 0), header=None, magic=b"\x93NUMPY"):
    if header is None:
        dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    length_bytes = 2 if version[0] == 1 else 4
    unpadded = len(magic) + 2 + length_bytes + len(header) + 1
    header = header + " " * ((64 - unpadded % 64) % 64) + "\n"
    length = struct.pack("<H" if length_bytes == 2 else "<I", len(header))
    if data is None:
        count = 1
        for d in shape:
            count *= d
        size = 8 if descr.endswith("8") else 4
        # Values in [-1, 1], like pixels scaled for the models.
        data = b"".join(struct.pack("<f" if size == 4 else "<d", ((i * 13) % 200) / 100.0 - 1.0) for i in range(count))
    return magic + bytes(version) + length + header.encode() + data


def make_npy():
    image = [1, 28, 28]
    files = {
        "good_samples": npy([4] + image),
        "bad_magic": npy([2] + image, magic=b"\x93NUMPZ"),
        "empty": b"",
        "version_3": npy([2] + image, version=(3, 0)),
        "int32": npy([2] + image, descr="<i4"),
        "big_endian": npy([2] + image, descr=">f4"),
        "fortran_order": npy([2] + image, fortran=True),
        "truncated_data": npy([2] + image)[:-100],
        "trailing_bytes": npy([2] + image) + b"\0" * 8,
        "header_past_end": npy([2] + image)[:8] + struct.pack("<H", 60000) + npy([2] + image)[10:],
        "header_not_dict": npy([2] + image, header="['descr', '<f4']"),
        "header_no_shape": npy([2] + image, header="{'descr': '<f4', 'fortran_order': False, }",
                               data=b""),
        "points_2d": npy([16, 2]),
        "wrong_image_size": npy([2, 1, 14, 14]),
        "too_few_samples": npy([1] + image),
        "no_samples": npy([0] + image),
        "not_finite": npy([2] + image, data=struct.pack("<f", float("nan")) + b"\0" * (4 * (2 * 784 - 1))),
    }
    for name, data in files.items():
        write(os.path.join("npy", name + ".npy"), data)


# ---- the good run -------------------------------------------------------------------------------------

def train_good_run(fmtrain):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([os.path.abspath(fmtrain), os.path.join(HERE, "good", "moons_tiny.json"), "--out", "run",
                        "--quiet"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        for name in ("config.json", "metrics.jsonl", "checkpoint.safetensors"):
            shutil.copyfile(os.path.join(tmp, "run", name), os.path.join(HERE, "good_run", name))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fmtrain", help="the fmtrain binary: retrain good_run/ first")
    args = parser.parse_args()
    if args.fmtrain:
        os.makedirs(os.path.join(HERE, "good_run"), exist_ok=True)
        train_good_run(args.fmtrain)
    make_checkpoints(os.path.join(HERE, "good_run", "checkpoint.safetensors"))
    make_idx()
    make_npy()


if __name__ == "__main__":
    main()
