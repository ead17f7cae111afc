import CHDF5

extension HDF5Group {
    /// Largest chunk the automatic chunk chooser aims for.
    private static let targetChunkBytes = 1 << 20

    /// Creates a group at `name` (a name or relative path; missing intermediate groups are
    /// created too). Fails if the name exists. Wraps `H5Gcreate2` with
    /// `H5Pset_create_intermediate_group`.
    package func createGroup(_ name: String) throws -> HDF5Group {
        HDF5Library.silence()
        let fullPath = try components(of: name).reduce(path, Self.join)
        let lcpl = try makeLinkCreationList(object: fullPath)
        defer { Temporary.closePlist(lcpl) }
        let id = H5Gcreate2(objectHandle.id, name, lcpl, scion_H5P_DEFAULT(), scion_H5P_DEFAULT())
        guard id >= 0 else { throw HDF5Error.library(file: file.path, object: fullPath, "cannot create group") }
        return HDF5Group(file: file, handle: HDF5Handle(id: id, kind: .group, owner: file.handle), path: fullPath)
    }

    /// Creates a dataset at `name` (a name or relative path; missing intermediate groups
    /// are created), stored little-endian as `elementType` (numbers and bool only).
    ///
    /// With `deflateLevel` (0...9) or `chunkShape`, the data is chunked: `chunkShape` must
    /// have one entry per dimension, each between 1 and that dimension; without it, chunks
    /// of at most about 1 MiB are chosen by halving the largest dimensions. Scalars and
    /// datasets with no elements cannot be chunked and are stored contiguously regardless.
    ///
    /// Wraps `H5Screate_simple` (or `H5Screate`), `H5Pset_chunk`, `H5Pset_deflate` and
    /// `H5Dcreate2`. Write the data with `HDF5Dataset.write(_:)`.
    package func createDataset(_ name: String, elementType: HDF5ElementType, shape: [Int],
                              deflateLevel: Int? = nil, chunkShape: [Int]? = nil) throws -> HDF5Dataset {
        HDF5Library.silence()
        let fullPath = try components(of: name).reduce(path, Self.join)
        func fail(_ reason: String) -> HDF5Error {
            HDF5Error(file: file.path, object: fullPath, reason: reason)
        }
        func libraryFail(_ action: String) -> HDF5Error {
            HDF5Error.library(file: file.path, object: fullPath, action)
        }
        guard let width = elementType.byteWidth else { throw fail("cannot create a dataset of \(elementType)") }
        guard shape.count <= 32 else { throw fail("rank \(shape.count) exceeds HDF5's limit of 32") }
        guard let count = Checked.product(shape), Checked.multiply(count, width) != nil else {
            throw fail("invalid shape \(shape)")
        }
        if let level = deflateLevel, !(0...9).contains(level) {
            throw fail("deflate level \(level) is not between 0 and 9")
        }
        let chunks = try chooseChunks(shape: shape, count: count, width: width,
                                      requested: chunkShape, compress: deflateLevel != nil, fail: fail)

        let type = elementType.makeTypeID()
        guard type >= 0 else { throw libraryFail("cannot create the datatype") }
        defer { Temporary.closeType(type) }
        let space: hid_t
        if shape.isEmpty {
            space = H5Screate(H5S_SCALAR)
        } else {
            var dims = shape.map { hsize_t($0) }
            space = H5Screate_simple(Int32(shape.count), &dims, nil)
        }
        guard space >= 0 else { throw libraryFail("cannot create the dataspace") }
        defer { Temporary.closeSpace(space) }
        let dcpl = H5Pcreate(scion_H5P_DATASET_CREATE())
        guard dcpl >= 0 else { throw libraryFail("cannot create a dataset creation property list") }
        defer { Temporary.closePlist(dcpl) }
        if let chunks {
            var dims = chunks.map { hsize_t($0) }
            guard H5Pset_chunk(dcpl, Int32(dims.count), &dims) >= 0 else { throw libraryFail("cannot set the chunk shape") }
            if let level = deflateLevel, H5Pset_deflate(dcpl, UInt32(level)) < 0 {
                throw libraryFail("cannot enable deflate compression")
            }
        }
        let lcpl = try makeLinkCreationList(object: fullPath)
        defer { Temporary.closePlist(lcpl) }
        let id = H5Dcreate2(objectHandle.id, name, type, space, lcpl, dcpl, scion_H5P_DEFAULT())
        guard id >= 0 else { throw libraryFail("cannot create dataset") }
        return try HDF5Dataset(file: file, handle: HDF5Handle(id: id, kind: .dataset, owner: file.handle), path: fullPath)
    }

    /// The chunk shape to use, or nil for contiguous storage.
    private func chooseChunks(shape: [Int], count: Int, width: Int, requested: [Int]?, compress: Bool,
                              fail: (String) -> HDF5Error) throws -> [Int]? {
        guard requested != nil || compress, !shape.isEmpty, count > 0 else { return nil }
        if let requested {
            guard requested.count == shape.count,
                  zip(requested, shape).allSatisfy({ 1 <= $0 && $0 <= $1 })
            else { throw fail("chunk shape \(requested) does not fit shape \(shape)") }
            guard let elements = Checked.product(requested), let bytes = Checked.multiply(elements, width),
                  bytes < (1 << 32) - 1
            else { throw fail("chunk shape \(requested) makes chunks of 4 GiB or more") }
            return requested
        }
        var chunks = shape
        while let bytes = Checked.product(chunks).flatMap({ Checked.multiply($0, width) }),
              bytes > Self.targetChunkBytes,
              let largest = chunks.indices.max(by: { chunks[$0] < chunks[$1] }),
              chunks[largest] > 1 {
            chunks[largest] = (chunks[largest] + 1) / 2
        }
        return chunks
    }

    /// A link creation property list that creates missing intermediate groups.
    /// Wraps `H5Pcreate` and `H5Pset_create_intermediate_group`.
    private func makeLinkCreationList(object: String) throws -> hid_t {
        let lcpl = H5Pcreate(scion_H5P_LINK_CREATE())
        guard lcpl >= 0 else { throw HDF5Error.library(file: file.path, object: object, "cannot create a link creation property list") }
        guard H5Pset_create_intermediate_group(lcpl, 1) >= 0 else {
            let error = HDF5Error.library(file: file.path, object: object, "cannot configure link creation")
            Temporary.closePlist(lcpl)
            throw error
        }
        return lcpl
    }
}
