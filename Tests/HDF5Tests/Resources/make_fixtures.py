"""Regenerates the h5py-written fixtures read by HDF5Tests (run from this folder).

    /opt/scion-oracle-venv/bin/python make_fixtures.py

The files mimic what Keras 2 writes through h5py: fixed-length byte-string attributes
(numpy bytes), arrays of them (layer_names / weight_names), an empty weight_names list
(h5py stores [] as a float64 array of shape (0,)), plus the hostile cases the reader must
refuse: soft, dangling and external links, and a dataset whose raw data lives in another
file (external storage).
"""
import json

import h5py
import numpy as np

# libver=("earliest", "v110") keeps the files readable by Debian's HDF5 1.10.8 even when
# h5py is built against a newer library.
LIBVER = ("earliest", "v110")

with h5py.File("external_target.h5", "w", libver=LIBVER) as f:
    f.create_dataset("secret", data=np.arange(4, dtype=np.float32))

with h5py.File("keras_like.h5", "w", libver=LIBVER) as f:
    f.attrs["keras_version"] = b"2.13.1"
    f.attrs["backend"] = b"tensorflow"
    f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "m"}}).encode("utf8")
    # np.bytes_ gives a fixed-length scalar, as Keras under h5py 2 wrote model_config.
    f.attrs["fixed_config"] = np.bytes_(json.dumps({"layers": ["d\u00e9nse"]}, ensure_ascii=False).encode("utf8"))
    for pad, strpad in (("nullterm", h5py.h5t.STR_NULLTERM), ("spacepad", h5py.h5t.STR_SPACEPAD)):
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(8)
        tid.set_strpad(strpad)
        f.attrs.create(pad, np.bytes_(b"abc"), dtype=h5py.Datatype(tid))
    f.attrs["vlen_text"] = "h\u00e9llo w\u00f6rld"  # str -> variable-length UTF-8
    f.attrs.create("vlen_array", ["alpha", "", "\u03b3amma"], dtype=h5py.string_dtype())
    f.attrs["one_element"] = np.array([b"only"])
    f.attrs["null_space"] = h5py.Empty("S1")
    f.attrs["number"] = np.int32(7)

    mw = f.create_group("model_weights")
    mw.attrs["layer_names"] = np.array([b"dense", b"dropout", b"dense_1"])
    mw.attrs["backend"] = b"tensorflow"
    dense = mw.create_group("dense")
    dense.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
    inner = dense.create_group("dense")
    inner.create_dataset("kernel:0", data=np.arange(6, dtype=np.float32).reshape(2, 3))
    inner.create_dataset("bias:0", data=np.array([0.5, -0.5, 1.0], dtype=np.float32))
    dropout = mw.create_group("dropout")
    dropout.attrs["weight_names"] = []  # numpy turns [] into float64 shape (0,)

    d = f.create_group("dtypes")
    d.create_dataset("f16", data=np.array([1.5, -2.0, 65504.0, 0.0], dtype=np.float16))
    d.create_dataset("f16_be", data=np.array([1.5, -2.0], dtype=">f2"))
    d.create_dataset("f32", data=np.array([[1.0, 2.0], [3.0, -4.25]], dtype=np.float32))
    d.create_dataset("f32_be", data=np.array([1.0, 2.5, -3.0], dtype=">f4"))
    d.create_dataset("f64", data=np.array([3.141592653589793, -1e300], dtype=np.float64))
    d.create_dataset("i8", data=np.array([-128, 127, 0], dtype=np.int8))
    d.create_dataset("i16", data=np.array([-300, 300], dtype=np.int16))
    d.create_dataset("i32", data=np.array([-70000, 70000], dtype=np.int32))
    d.create_dataset("i64", data=np.array([-(2**40), 2**40], dtype=np.int64))
    d.create_dataset("u8", data=np.array([0, 255], dtype=np.uint8))
    d.create_dataset("u16", data=np.array([65535], dtype=np.uint16))
    d.create_dataset("u32", data=np.array([4000000000], dtype=np.uint32))
    d.create_dataset("u64", data=np.array([2**63], dtype=np.uint64))
    d.create_dataset("bool", data=np.array([True, False, True]))
    d.create_dataset("scalar", data=np.float64(2.5))
    d.create_dataset("empty", shape=(0, 3), dtype=np.float32)
    d.create_dataset("strings", data=["a", "bb"], dtype=h5py.string_dtype())
    d.create_dataset("gzip", data=np.arange(1000, dtype=np.float32).reshape(100, 10),
                     compression="gzip", compression_opts=6, chunks=(10, 10), shuffle=True)
    d.create_dataset("external_storage", shape=(4,), dtype=np.float32,
                     external=[("external_raw.bin", 0, 16)])
    d.attrs["note"] = b"dataset attributes"
    d["f32"].attrs["unit"] = b"metres"

    f["named_type"] = np.dtype("<f4")
    nested = f.create_group("a/b/c")
    nested.create_dataset("leaf", data=np.array([42], dtype=np.int32))

    f["soft"] = h5py.SoftLink("/model_weights")
    f["dangling"] = h5py.SoftLink("/nowhere")
    f["external"] = h5py.ExternalLink("external_target.h5", "/secret")
    f["a"]["to_secret"] = h5py.ExternalLink("external_target.h5", "/")

with h5py.File("userblock.h5", "w", libver=LIBVER, userblock_size=1024) as f:
    f.attrs["where"] = b"after a 1024-byte user block"
    f.create_dataset("x", data=np.array([1, 2, 3], dtype=np.int16))
with open("userblock.h5", "r+b") as raw:
    raw.write(b"user block text, not HDF5")

print("done")
