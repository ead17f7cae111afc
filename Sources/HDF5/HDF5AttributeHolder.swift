import CHDF5

/// An object that carries attributes: `HDF5Group` and `HDF5Dataset`.
package protocol HDF5AttributeHolder: AnyObject, Sendable {
    /// The file the object belongs to.
    var file: HDF5File { get }
    /// Full path of the object inside the file.
    var path: String { get }
    /// The open identifier (opaque outside this module).
    var objectHandle: HDF5Handle { get }
}

/// Largest attribute value this module will allocate for (attributes live in object
/// headers; real ones are far smaller, hostile ones can claim anything).
let maxAttributeBytes = 1 << 30

extension HDF5AttributeHolder {
    /// Names of this object's attributes, in name order. Wraps `H5Aiterate2`.
    package func attributeNames() throws -> [String] {
        HDF5Library.silence()
        var names: [String] = []
        let status = withUnsafeMutablePointer(to: &names) { pointer in
            H5Aiterate2(objectHandle.id, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, context in
                guard let name, let context else { return -1 }
                context.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                return 0
            }, pointer)
        }
        guard status >= 0 else { throw HDF5Error.library(file: file.path, object: path, "cannot list attributes") }
        return names
    }

    /// Whether the attribute exists; false also when libhdf5 cannot tell. Wraps `H5Aexists`.
    package func hasAttribute(_ name: String) -> Bool {
        HDF5Library.silence()
        guard !name.utf8.contains(0) else { return false }
        let status = H5Aexists(objectHandle.id, name)
        if status < 0 { _ = H5Eclear2(scion_H5E_DEFAULT()) }
        return status > 0
    }

    /// A string attribute holding exactly one string: a scalar, or an array of one element
    /// (fixed-length with any padding, or variable-length). Invalid UTF-8 is repaired
    /// with U+FFFD.
    package func stringAttribute(_ name: String) throws -> String {
        let values = try readStringAttribute(name, allowNonStringWhenEmpty: false)
        guard values.count == 1, let value = values.first else {
            throw HDF5Error(file: file.path, object: path,
                            reason: "attribute '\(name)' holds \(values.count) strings, expected one")
        }
        return value
    }

    /// A string attribute as an array: an array of fixed- or variable-length strings, a
    /// scalar (one element), or an empty attribute (`[]`: an `H5S_NULL` dataspace or a
    /// zero-length array, of any type, since h5py stores `[]` as a float64 array of shape
    /// `(0,)`, which is what Keras writes for a layer without weights).
    package func stringArrayAttribute(_ name: String) throws -> [String] {
        try readStringAttribute(name, allowNonStringWhenEmpty: true)
    }

    /// Wraps `H5Aopen`, `H5Aget_space`, `H5Aget_type` and `H5Aread` (fixed-length strings);
    /// variable-length strings come from the file's walk in a child process.
    func readStringAttribute(_ name: String, allowNonStringWhenEmpty: Bool) throws -> [String] {
        HDF5Library.silence()
        func fail(_ reason: String) -> HDF5Error {
            HDF5Error(file: file.path, object: path, reason: "attribute '\(name)' \(reason)")
        }
        func libraryFail(_ action: String) -> HDF5Error {
            HDF5Error.library(file: file.path, object: path, "\(action) attribute '\(name)'")
        }
        guard !name.isEmpty, !name.utf8.contains(0) else { throw fail("has an invalid name") }
        let exists = H5Aexists(objectHandle.id, name)
        guard exists >= 0 else { throw libraryFail("cannot look up") }
        guard exists > 0 else { throw fail("does not exist") }
        let attribute = H5Aopen(objectHandle.id, name, scion_H5P_DEFAULT())
        guard attribute >= 0 else { throw libraryFail("cannot open") }
        defer { Temporary.closeAttribute(attribute) }
        let space = H5Aget_space(attribute)
        guard space >= 0 else { throw libraryFail("cannot read the dataspace of") }
        defer { Temporary.closeSpace(space) }
        let fileType = H5Aget_type(attribute)
        guard fileType >= 0 else { throw libraryFail("cannot read the datatype of") }
        defer { Temporary.closeType(fileType) }

        let count: Int
        switch H5Sget_simple_extent_type(space) {
        case H5S_NULL: count = 0
        case H5S_SCALAR: count = 1
        case H5S_SIMPLE:
            let points = H5Sget_simple_extent_npoints(space)
            guard points >= 0, let points = Int(exactly: points) else { throw libraryFail("cannot count the elements of") }
            count = points
        default: throw fail("has an unknown dataspace")
        }
        let typeClass = H5Tget_class(fileType)
        if count == 0 && (allowNonStringWhenEmpty || typeClass == H5T_STRING) { return [] }
        guard typeClass == H5T_STRING else {
            throw fail("is not a string (it holds \(HDF5ElementType(fileType: fileType)))")
        }
        let isVariable = H5Tis_variable_str(fileType)
        guard isVariable >= 0 else { throw libraryFail("cannot inspect the string type of") }
        let cset = H5Tget_cset(fileType)
        if isVariable > 0 {
            guard let bytes = Checked.multiply(count, MemoryLayout<UnsafeMutablePointer<CChar>?>.stride),
                  bytes <= maxAttributeBytes
            else { throw fail("claims \(count) strings, too many") }
            // Read where a crash cannot reach this process (HDF5File+Isolation.swift).
            return try isolatedVariableStrings(name, count: count)
        }
        let size = H5Tget_size(fileType)
        guard size > 0 else { throw libraryFail("cannot read the string size of") }
        guard let bytes = Checked.multiply(count, size), bytes <= maxAttributeBytes else {
            throw fail("claims \(count) strings of \(size) bytes, too large")
        }
        return try readFixedStrings(attribute, count: count, size: size, cset: cset, fail: libraryFail)
    }

    /// Fixed-length strings: memory type `H5T_C_S1` of the file's size with `H5T_STR_NULLPAD`
    /// (the default `NULLTERM` would drop the last character of a full-width string) and the
    /// file's character set; each element ends at its first NUL. libhdf5 turns space
    /// padding into NUL padding while converting.
    private func readFixedStrings(_ attribute: hid_t, count: Int, size: Int, cset: H5T_cset_t,
                                  fail: (String) -> HDF5Error) throws -> [String] {
        let memoryType = H5Tcopy(scion_H5T_C_S1())
        guard memoryType >= 0 else { throw fail("cannot create a memory type for") }
        defer { Temporary.closeType(memoryType) }
        guard H5Tset_size(memoryType, size) >= 0,
              H5Tset_strpad(memoryType, H5T_STR_NULLPAD) >= 0,
              cset.rawValue < 0 || H5Tset_cset(memoryType, cset) >= 0
        else { throw fail("cannot set up a memory type for") }
        var buffer = [UInt8](repeating: 0, count: count * size)
        let status = buffer.withUnsafeMutableBytes { H5Aread(attribute, memoryType, $0.baseAddress) }
        guard status >= 0 else { throw fail("cannot read") }
        return (0..<count).map { index in
            let element = buffer[(index * size)..<((index + 1) * size)]
            return String(decoding: element.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
