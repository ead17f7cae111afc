import CHDF5

/// What a name in a group refers to. Links are reported, never followed.
package enum HDF5ObjectKind: Hashable, Sendable {
    case group
    case dataset
    /// A committed (named) datatype.
    case namedDatatype
    /// A soft link (a path inside the file, possibly dangling).
    case softLink
    /// A link to an object in another file.
    case externalLink
    /// No such name.
    case missing
    /// A user-defined link type or an object of a kind libhdf5 does not classify.
    case other
}

/// An open group. Keeps its file open.
package final class HDF5Group: HDF5AttributeHolder, Sendable {
    package let file: HDF5File
    /// Full path inside the file, e.g. `/model_weights/dense`.
    package let path: String
    package let objectHandle: HDF5Handle

    init(file: HDF5File, handle: HDF5Handle, path: String) {
        self.file = file
        self.objectHandle = handle
        self.path = path
    }

    /// Names of the links in this group (groups, datasets, named types and links alike),
    /// in HDF5's name order (byte-wise ascending).
    ///
    /// Wraps `H5Literate` with `H5_INDEX_NAME`, `H5_ITER_INC`.
    package func childNames() throws -> [String] {
        HDF5Library.silence()
        var names: [String] = []
        let status = withUnsafeMutablePointer(to: &names) { pointer in
            H5Literate(objectHandle.id, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, context in
                guard let name, let context else { return -1 }
                context.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                return 0
            }, pointer)
        }
        guard status >= 0 else { throw error("cannot list the group's members") }
        return names
    }

    /// What `child` (a name, or a relative path `a/b/c`) refers to. Every intermediate
    /// component must be a hard link to a group; when one is a soft or external link,
    /// that link's kind is returned (it is not followed), when one is missing or not a
    /// group, `.missing`.
    ///
    /// Wraps `H5Lexists`, `H5Lget_info` and `H5Oget_info_by_name2`.
    package func kind(of child: String) throws -> HDF5ObjectKind {
        HDF5Library.silence()
        let components = try components(of: child)
        var location = objectHandle.id
        var opened: hid_t = -1
        defer { Temporary.closeGroup(opened) }
        var currentPath = path
        for (index, name) in components.enumerated() {
            currentPath = Self.join(currentPath, name)
            let link = try inspectLink(in: location, name: name, path: currentPath)
            if index == components.count - 1 { return link.kind }
            switch link.kind {
            case .group: break
            case .softLink, .externalLink, .other: return link.kind
            case .dataset, .namedDatatype, .missing: return .missing
            }
            let next = H5Gopen2(location, name, scion_H5P_DEFAULT())
            guard next >= 0 else { throw HDF5Error.library(file: file.path, object: currentPath, "cannot open group") }
            Temporary.closeGroup(opened)
            opened = next
            location = next
        }
        return .missing
    }

    /// Opens the group at `name` (a name or relative path `a/b/c`). Each component must be
    /// a hard link to a group; soft and external links are refused, naming the link and its
    /// target (the file is untrusted). Wraps `H5Gopen2`.
    package func group(_ name: String) throws -> HDF5Group {
        HDF5Library.silence()
        let (id, fullPath) = try open(name, as: .group)
        return HDF5Group(file: file, handle: HDF5Handle(id: id, kind: .group, owner: file.handle), path: fullPath)
    }

    /// Opens the dataset at `name` (a name or relative path `layer/kernel:0`), with the same
    /// checks as `group(_:)`. Wraps `H5Dopen2`.
    package func dataset(_ name: String) throws -> HDF5Dataset {
        HDF5Library.silence()
        let (id, fullPath) = try open(name, as: .dataset)
        return try HDF5Dataset(file: file, handle: HDF5Handle(id: id, kind: .dataset, owner: file.handle), path: fullPath)
    }

    /// Walks `relative` one validated hard link at a time and opens its last component as
    /// `final` (`.group` or `.dataset`); the caller owns the returned identifier.
    private func open(_ relative: String, as final: HDF5ObjectKind) throws -> (hid_t, String) {
        let components = try components(of: relative)
        var location = objectHandle.id
        var opened: hid_t = -1
        defer { Temporary.closeGroup(opened) }
        var currentPath = path
        for (index, name) in components.enumerated() {
            currentPath = Self.join(currentPath, name)
            let isLast = index == components.count - 1
            let wanted: HDF5ObjectKind = isLast ? final : .group
            let link = try inspectLink(in: location, name: name, path: currentPath)
            guard link.kind == wanted else {
                throw HDF5Error(file: file.path, object: currentPath, reason: link.refusal(wanted: wanted))
            }
            if isLast && final == .dataset {
                let id = H5Dopen2(location, name, scion_H5P_DEFAULT())
                guard id >= 0 else { throw HDF5Error.library(file: file.path, object: currentPath, "cannot open dataset") }
                return (id, currentPath)
            }
            let next = H5Gopen2(location, name, scion_H5P_DEFAULT())
            guard next >= 0 else { throw HDF5Error.library(file: file.path, object: currentPath, "cannot open group") }
            if isLast { return (next, currentPath) }
            Temporary.closeGroup(opened)
            opened = next
            location = next
        }
        throw HDF5Error(file: file.path, object: path, reason: "empty object name")
    }

    /// Splits a relative path, refusing what would not mean a plain child: empty
    /// components (leading, trailing or doubled `/`), `.` and embedded NUL characters.
    func components(of relative: String) throws -> [String] {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for part in parts where part.isEmpty || part == "." || part.utf8.contains(0) {
            throw HDF5Error(file: file.path, object: path, reason: "invalid object name '\(relative)' (use a relative path of non-empty names)")
        }
        return parts
    }

    static func join(_ base: String, _ name: String) -> String {
        base.hasSuffix("/") ? base + name : base + "/" + name
    }

    func error(_ action: String) -> HDF5Error {
        HDF5Error.library(file: file.path, object: path, action)
    }
}
