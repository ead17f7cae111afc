"""Writes the hostile corpus: files a stranger could hand Scion, each of which must end in exit status
1 with one line on stderr, within seconds (Tests/ScionCommandTests/HostileCorpusTests.swift runs
them; corpus.json says how and what the line must mention).

Deterministic (fixed seeds); run from the repository root with the oracle venv (numpy, onnx, h5py):
    .build/oracle-venv/bin/python Tests/Hostile/make_corpus.py
hdf5_heap_crash.h5, hdf5_loops.h5 and fuzz_*.onnx are not made here (the fuzz_ files are inputs
scripts/fuzz.sh found that crashed a reader, kept as regressions). The .h5 ones are Keras fixtures with random
bytes overwritten, kept from fuzzing because libhdf5 1.10.8 crashes (a damaged global heap) or
loops forever (a damaged link table) on them.
"""
import io
import json
import os
import random
import struct
import zipfile
import zlib

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SMALL_H5 = os.path.join(ROOT, "fixtures", "keras2", "conv1d_zoo.h5")
SMALL_KERAS = os.path.join(ROOT, "Sources", "ScionCommand", "Resources", "digits", "digits_cnn.keras")
entries = []


def write(name, data, args, expect):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    entries.append({"file": name, "args": args, "expect": expect})


def keep(name, args, expect):
    entries.append({"file": name, "args": args, "expect": expect})


def onnx_bytes(nodes, inputs, outputs, initializers=(), value_info=()):
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, list(initializers), value_info=list(value_info))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def keras_archive(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            # A fixed date: the corpus is rebuilt byte for byte.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def h5_bytes(build):
    path = os.path.join(HERE, "_scratch.h5")
    with h5py.File(path, "w") as f:
        build(f)
    data = open(path, "rb").read()
    os.remove(path)
    return data


def declared_chunked_archive(source):
    """The digits CNN's archive with its last Dense declaring 2**28 units: the config says so and the
    kernel is a chunked dataset of that shape with one chunk written (4 GiB declared, a few KB stored)."""
    units = 1 << 28
    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    dense = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"][-1]
    dense["config"]["units"] = units
    files["config.json"] = json.dumps(config).encode()
    path = os.path.join(HERE, "_scratch.h5")
    with open(path, "wb") as f:
        f.write(files["model.weights.h5"])
    with h5py.File(path, "r+") as f:
        variables = f["layers"]["dense"]["vars"]   # Keras 3 names the path by class, not by layer name
        rows = variables["0"].shape[0]
        del variables["0"], variables["1"]
        kernel = variables.create_dataset("0", shape=(rows, units), dtype="f4", chunks=(rows, 256))
        kernel[:, :256] = 1.0
        variables.create_dataset("1", shape=(units,), dtype="f4", chunks=(256,))
    files["model.weights.h5"] = open(path, "rb").read()
    os.remove(path)
    return keras_archive(files)


def npy(array_bytes_header, body=b""):
    magic = b"\x93NUMPY\x01\x00"
    header = array_bytes_header.encode("latin1")
    header += b" " * (63 - (len(magic) + 2 + len(header)) % 64) + b"\n"
    return magic + struct.pack("<H", len(header)) + header + body


def main():
    rng = random.Random(8)
    inspect = ["inspect", "{file}"]
    h5 = open(SMALL_H5, "rb").read()
    keras = open(SMALL_KERAS, "rb").read()

    # Keras .h5: empty, random, truncated, bit-flipped, libhdf5's own crash and loop, links.
    write("empty.h5", b"", inspect, "is empty")
    write("random.h5", bytes(rng.randrange(256) for _ in range(4096)), inspect, "not an HDF5 file")
    write("truncated.h5", h5[: len(h5) // 2], inspect, "truncated file")
    flipped = bytearray(h5)
    for offset in range(2048, len(flipped), 997):
        flipped[offset] ^= 0x5A
    write("bit_flipped.h5", bytes(flipped), inspect, "model_config")
    keep("hdf5_heap_crash.h5", inspect, "libhdf5 crashed")
    keep("hdf5_loops.h5", inspect, "did not finish")
    config = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": []}})

    def soft(f):
        f.attrs["model_config"] = config
        f["model_weights"] = h5py.SoftLink("/elsewhere")
    write("soft_link.h5", h5_bytes(soft), inspect, "is a soft link to '/elsewhere'")

    def external(f):
        f.attrs["model_config"] = config
        f["model_weights"] = h5py.ExternalLink("/etc/passwd", "/")
    write("external_link.h5", h5_bytes(external), inspect, "links to other files are not followed")

    def not_json(f):
        f.attrs["model_config"] = "{not json"
        f.create_group("model_weights")
    write("config_not_json.h5", h5_bytes(not_json), inspect, "JSON")

    # .keras archives: empty, random, truncated, zip bomb, hostile configs.
    write("empty.keras", b"", inspect, "is empty")
    write("random.keras", bytes(rng.randrange(256) for _ in range(4096)), inspect, "not a zip archive")
    write("truncated.keras", keras[: len(keras) * 2 // 3], inspect, "truncated")
    write("zip_bomb.keras", keras_archive({"config.json": b" " * (300 << 20), "model.weights.h5": b""}), inspect, "more than the 268435456-byte limit")
    write("config_deep.keras", keras_archive({"config.json": b"[" * 200000 + b"]" * 200000}), inspect, "config.json: is not valid JSON")
    write("config_not_json.keras", keras_archive({"config.json": b"{\"class_name\": ", "model.weights.h5": b""}), inspect, "config.json: is not valid JSON")
    cycle = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "Dense", "name": "a", "config": {"name": "a", "units": 2},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 0, 0]}}], "kwargs": {}}]},
        {"class_name": "Dense", "name": "b", "config": {"name": "b", "units": 2},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}}], "kwargs": {}}]}],
        "input_layers": [], "output_layers": [["b", 0, 0]]}}
    # Found by fuzzing: a chunked weight whose shape declares gigabytes the file never stored (chunks
    # not written read as the fill value) was allocated in full before reading.
    write("chunked_declared_huge.keras", declared_chunked_archive(keras), ["convert", "{file}", "{output}.onnx"],
          "more than compression can explain")
    write("config_cycle.keras", keras_archive({"config.json": json.dumps(cycle).encode(), "model.weights.h5": b""}), inspect, "which no layer in the model produces")

    # ONNX: empty, random, truncated, declared-huge and negative dims, escaping external data,
    # cycles, dangling edges.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    good = onnx_bytes([helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    write("empty.onnx", b"", inspect, "is empty")
    write("random.onnx", bytes(rng.randrange(256) for _ in range(4096)), inspect, "not an ONNX model")
    write("truncated.onnx", good[: len(good) - 7], inspect, "not an ONNX model")
    def declared(dims):
        tensor = TensorProto(name="w", data_type=TensorProto.FLOAT)
        tensor.dims.extend(dims)
        return tensor
    huge = declared([1 << 40, 1 << 40])
    write("declared_huge.onnx", onnx_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [huge]),
          ["convert", "{file}", "{output}.keras"], "hold more elements than can be counted")
    negative = declared([-3, 4])
    write("negative_dims.onnx", onnx_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [negative]),
          ["convert", "{file}", "{output}.keras"], "has a negative dimension")
    for name, location in (("external_escape.onnx", "../../../etc/passwd"), ("external_absolute.onnx", "/etc/passwd")):
        w = helper.make_tensor("w", TensorProto.FLOAT, [1, 4], vals=[0, 0, 0, 0])
        w.ClearField("float_data")
        w.data_location = TensorProto.EXTERNAL
        w.external_data.add(key="location", value=location)
        write(name, onnx_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [w]),
              ["convert", "{file}", "{output}.keras"], "external data")
    write("cycle.onnx", onnx_bytes([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                                    helper.make_node("Identity", ["a"], ["y"])], [x], [y]), inspect, "is part of a cycle")
    write("dangling.onnx", onnx_bytes([helper.make_node("Add", ["x", "nowhere"], ["y"])], [x], [y]), inspect, "reads 'nowhere', which no node")

    # Found by fuzzing (scripts/fuzz.sh): a ConvTranspose whose attribute lists are shorter than
    # its rank crashed shape inference (an index out of range) in the importer.
    keep("fuzz_conv_transpose_attributes.onnx", inspect, "which no node, input or initializer provides")
    # ... and Pad amounts near Int.max overflowed its shape arithmetic (a trap).
    keep("fuzz_pad_overflow.onnx", inspect, "do not fit shape")
    # ... and a MaxPool with fewer strides than window axes indexed past them.
    keep("fuzz_pool_strides.onnx", inspect, "do not fit an input of shape")
    # ... and a node whose operands were all empty names reached the symbolic folding of shape
    # arithmetic, which read its first operand (an index out of range).
    keep("fuzz_operandless_fold.onnx", inspect, "which no node, input or initializer provides")

    # .npy inputs for `scion run`: declared huge, negative shape, truncated data, unknown dtype.
    model = os.path.join("fixtures", "keras3", "mobilenet_v2.keras")
    run = ["run", model, "--input", "{file}", "--output", "{output}.npy"]
    write("declared_huge.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }"), run, "too large")
    write("negative_shape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }"), run, "malformed shape")
    write("truncated.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 32, 32, 3), }", b"\0" * 100), run, "but holds 100 data bytes")
    write("object_dtype.npy", npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", b"\0" * 16), run, "holds |O values")

    # Bad training data for `scion finetune` on the digits CNN (one output of 5 classes).
    digits = os.path.join("fixtures", "digits", "digits_cnn.h5")   # the same weights as the demo's .keras
    tune = ["finetune", digits, "--data", "{file}", "-o", "{output}.keras"]
    images = np.zeros((4, 8, 8, 1), np.float32)

    def npz(**arrays):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()
    write("train_count_mismatch.npz", npz(x=images, y=np.arange(3)), tune, "4 input samples and 3 targets")
    poisoned = images.copy()
    poisoned[1, 2, 3, 0] = np.nan
    write("train_nan.npz", npz(x=poisoned, y=np.arange(4)), tune, "NaN")
    write("train_label_range.npz", npz(x=images, y=np.array([0, 1, 2, 9])), tune, "label 9.0 is not a class")
    write("train_wrong_shape.npz", npz(x=np.zeros((4, 8, 8, 3), np.float32), y=np.arange(4)), tune, "samples have shape [8, 8, 3]")

    write_images()
    with open(os.path.join(HERE, "corpus.json"), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    print(f"{len(entries)} hostile cases in {HERE}")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width, height, idat=b""):
    """A PNG whose IHDR (valid CRC) declares the size; IDAT holds `idat` (compressed rows) or nothing."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(idat))
            + png_chunk(b"IEND", b""))


def jpeg_declaring(jpeg, width, height):
    """The JPEG with its frame header (SOFn) declaring another size."""
    data = bytearray(jpeg)
    position = 2
    while position + 4 <= len(data):
        marker, length = data[position + 1], struct.unpack(">H", data[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data[position + 5:position + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        position += 2 + length
    raise ValueError("no frame header")


def write_images():
    """Broken images for the image-folder readers (issue 17). images.json says what each must fail
    with; ImagesHostileTests (Tests/ScionImagesTests) reads them through the library now, and its
    `args` are how `scion predict` / `finetune --data` will run them once those commands take images
    (then the entries join corpus.json)."""
    global entries
    kept, entries = entries, []
    digits = os.path.join(ROOT, "fixtures", "images", "digits")
    png = open(os.path.join(digits, "one", "one_02.png"), "rb").read()
    jpeg = open(os.path.join(digits, "one", "one_01.jpg"), "rb").read()
    predict = ["predict", "fixtures/digits/digits_cnn.h5", "{file}"]
    write("image_empty.png", b"", predict, "is empty")
    write("image_not_an_image.jpg", b"these bytes are a note, not a JPEG\n" * 4, predict, "is not an image")
    write("image_truncated.png", png[: len(png) // 2], predict, "is truncated")
    scan = jpeg.index(b"\xff\xda")
    write("image_truncated.jpg", jpeg[: (scan + len(jpeg)) // 2], predict, "is truncated")   # cut inside the scan
    write("image_truncated_header.jpg", jpeg[: scan // 2], predict, "is truncated")   # cut before it
    write("image_zero_width.png", png_declaring(0, 16), predict, "no pixels")
    write("image_zero_height.jpg", jpeg_declaring(jpeg, 30, 0), predict, "no pixels")
    flipped = bytearray(png)
    idat = flipped.index(b"IDAT")
    length = struct.unpack(">I", flipped[idat - 4:idat])[0]
    flipped[idat + 4 + length] ^= 0xFF   # the first byte of IDAT's CRC
    write("image_bad_crc.png", bytes(flipped), predict, "CRC error")
    write("image_huge.png", png_declaring(60000, 60000, b"\0" * 1000), predict, "60000 x 60000")
    write("image_huge.jpg", jpeg_declaring(jpeg, 60000, 60000), predict, "60000 x 60000")
    rng = random.Random(17)
    write("image_random.png", png[:8] + bytes(rng.randrange(256) for _ in range(2048)), predict, "is damaged")
    # A data folder whose class folder holds one good image and two links out of it: one to a
    # system file, one to this script (inside the repository, still outside the data folder).
    folder = os.path.join(HERE, "image_links")
    if os.path.isdir(folder):
        import shutil
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, "digit"))
    with open(os.path.join(folder, "digit", "good.png"), "wb") as f:
        f.write(png)
    os.symlink("/etc/passwd", os.path.join(folder, "digit", "passwd.png"))
    os.symlink("../../make_corpus.py", os.path.join(folder, "digit", "script.jpg"))
    with open(os.path.join(HERE, "images.json"), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    print(f"{len(entries)} hostile images in {HERE}")
    entries = kept
    # `scion finetune --data DIR` reads folders today: this case runs through the command.
    keep("image_links", ["finetune", "fixtures/digits/digits_cnn.h5", "--data", "{file}", "--follow-links", "--on-bad-image", "fail",
                         "-o", "{output}.keras"], "outside the data folder")


if __name__ == "__main__":
    main()
