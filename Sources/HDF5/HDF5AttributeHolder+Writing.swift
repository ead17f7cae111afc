import CHDF5

extension HDF5AttributeHolder {
    /// Writes a scalar string attribute, replacing any attribute of that name: fixed-length,
    /// sized to the UTF-8 bytes (at least 1), NUL-padded — what h5py writes for numpy bytes
    /// (`np.bytes_`), which Keras and h5py read back as `bytes`. The character set is ASCII
    /// when the text is, UTF-8 otherwise. Strings containing NUL are refused (they would
    /// read back cut short).
    ///
    /// Wraps `H5Screate`, `H5Acreate2` and `H5Awrite`.
    package func setStringAttribute(_ name: String, _ value: String) throws {
        try writeFixedStrings(name, [value], scalar: true)
    }

    /// Writes a one-dimensional array of fixed-length, NUL-padded strings, all as wide as the
    /// longest UTF-8 encoding (at least 1) — what Keras writes for `layer_names` and
    /// `weight_names` through numpy. An empty array gets shape `(0,)`.
    ///
    /// Wraps `H5Screate_simple`, `H5Acreate2` and `H5Awrite`.
    package func setStringArrayAttribute(_ name: String, _ values: [String]) throws {
        try writeFixedStrings(name, values, scalar: false)
    }

    private func writeFixedStrings(_ name: String, _ values: [String], scalar: Bool) throws {
        HDF5Library.silence()
        func fail(_ reason: String) -> HDF5Error {
            HDF5Error(file: file.path, object: path, reason: "attribute '\(name)' \(reason)")
        }
        func libraryFail(_ action: String) -> HDF5Error {
            HDF5Error.library(file: file.path, object: path, "\(action) attribute '\(name)'")
        }
        guard !name.isEmpty, !name.utf8.contains(0) else { throw fail("has an invalid name") }
        let encoded = values.map { Array($0.utf8) }
        guard !encoded.contains(where: { $0.contains(0) }) else { throw fail("cannot hold a string containing NUL") }
        let width = max(1, encoded.map(\.count).max() ?? 1)
        guard let total = Checked.multiply(width, encoded.count), total <= maxAttributeBytes else {
            throw fail("would be too large")
        }
        let isASCII = encoded.allSatisfy { $0.allSatisfy { $0 < 0x80 } }

        let type = H5Tcopy(scion_H5T_C_S1())
        guard type >= 0 else { throw libraryFail("cannot create a string type for") }
        defer { Temporary.closeType(type) }
        guard H5Tset_size(type, width) >= 0,
              H5Tset_strpad(type, H5T_STR_NULLPAD) >= 0,
              H5Tset_cset(type, isASCII ? H5T_CSET_ASCII : H5T_CSET_UTF8) >= 0
        else { throw libraryFail("cannot set up a string type for") }

        let space: hid_t
        if scalar {
            space = H5Screate(H5S_SCALAR)
        } else {
            var dims = [hsize_t(encoded.count)]
            space = H5Screate_simple(1, &dims, nil)
        }
        guard space >= 0 else { throw libraryFail("cannot create a dataspace for") }
        defer { Temporary.closeSpace(space) }

        let exists = H5Aexists(objectHandle.id, name)
        guard exists >= 0 else { throw libraryFail("cannot look up") }
        if exists > 0, H5Adelete(objectHandle.id, name) < 0 { throw libraryFail("cannot replace") }
        let attribute = H5Acreate2(objectHandle.id, name, type, space, scion_H5P_DEFAULT(), scion_H5P_DEFAULT())
        guard attribute >= 0 else { throw libraryFail("cannot create") }
        defer { Temporary.closeAttribute(attribute) }
        guard total > 0, !encoded.isEmpty else { return }
        var buffer = [UInt8](repeating: 0, count: total)
        for (index, bytes) in encoded.enumerated() {
            buffer.replaceSubrange((index * width)..<(index * width + bytes.count), with: bytes)
        }
        let status = buffer.withUnsafeBytes { H5Awrite(attribute, type, $0.baseAddress) }
        guard status >= 0 else { throw libraryFail("cannot write") }
    }
}
