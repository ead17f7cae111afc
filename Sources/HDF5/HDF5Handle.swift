import CHDF5

/// An open libhdf5 identifier (file, group or dataset), closed when the last reference goes.
///
/// Opaque outside this module. A group's or dataset's handle holds a strong reference to
/// its file's handle, so the file stays open for as long as anything opened from it lives,
/// and is closed only after them (the deinit body runs before stored properties are
/// released).
///
/// libhdf5 is built thread-safe here (one global lock), so handles may cross threads.
package final class HDF5Handle: Sendable {
    enum Kind: Sendable {
        case file, group, dataset
    }

    let id: hid_t
    let kind: Kind
    /// The file handle a group or dataset depends on; nil for a file.
    let owner: HDF5Handle?

    init(id: hid_t, kind: Kind, owner: HDF5Handle?) {
        self.id = id
        self.kind = kind
        self.owner = owner
    }

    /// Wraps `H5Fclose`, `H5Gclose` or `H5Dclose`.
    deinit {
        HDF5Library.silence()
        switch kind {
        case .file: _ = H5Fclose(id)
        case .group: _ = H5Gclose(id)
        case .dataset: _ = H5Dclose(id)
        }
        _ = H5Eclear2(scion_H5E_DEFAULT())
    }
}

/// Temporary identifiers (types, dataspaces, property lists, attributes) that must be
/// closed on every path out of a function.
enum Temporary {
    /// Wraps `H5Tclose`.
    static func closeType(_ id: hid_t) { if id >= 0 { _ = H5Tclose(id) } }
    /// Wraps `H5Sclose`.
    static func closeSpace(_ id: hid_t) { if id >= 0 { _ = H5Sclose(id) } }
    /// Wraps `H5Pclose`.
    static func closePlist(_ id: hid_t) { if id >= 0 { _ = H5Pclose(id) } }
    /// Wraps `H5Aclose`.
    static func closeAttribute(_ id: hid_t) { if id >= 0 { _ = H5Aclose(id) } }
    /// Wraps `H5Gclose`.
    static func closeGroup(_ id: hid_t) { if id >= 0 { _ = H5Gclose(id) } }
}

/// Checked arithmetic for sizes read from untrusted files.
enum Checked {
    /// The product of `values`, or nil on overflow or a negative factor.
    static func product(_ values: [Int]) -> Int? {
        var result = 1
        for value in values {
            guard value >= 0 else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: value)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// `a * b`, or nil on overflow.
    static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (result, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : result
    }

    /// An `hsize_t` as `Int`, or nil when it does not fit.
    static func int(_ value: hsize_t) -> Int? {
        value <= hsize_t(Int.max) ? Int(value) : nil
    }
}
