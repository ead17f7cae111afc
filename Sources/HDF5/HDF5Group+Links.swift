import CHDF5

/// What one link in a group is, with enough detail to explain a refusal.
struct HDF5LinkInfo {
    var kind: HDF5ObjectKind
    /// For soft links the target path, for external links "file:/object" (bounded size).
    var target: String?

    func refusal(wanted: HDF5ObjectKind) -> String {
        let noun = wanted == .group ? "a group" : "a dataset"
        let quoted = target.map { " '\($0)'" } ?? ""
        switch kind {
        case .missing: return "no such object"
        case .softLink: return "is a soft link to\(quoted), not \(noun); links are not followed"
        case .externalLink: return "is an external link to\(quoted), not \(noun); links to other files are not followed"
        case .group: return "is a group, not \(noun)"
        case .dataset: return "is a dataset, not \(noun)"
        case .namedDatatype: return "is a named datatype, not \(noun)"
        case .other: return "is a user-defined link or unknown object, not \(noun)"
        }
    }
}

extension HDF5Group {
    /// Longest link value decoded for error messages.
    private static let maxLinkValue = 4096

    /// Classifies the single link `name` in the group `location` without following it.
    ///
    /// Wraps `H5Lexists`, `H5Lget_info`, `H5Oget_info_by_name2` (hard links only),
    /// and `H5Lget_val`.
    func inspectLink(in location: hid_t, name: String, path: String) throws -> HDF5LinkInfo {
        let exists = H5Lexists(location, name, scion_H5P_DEFAULT())
        guard exists >= 0 else { throw HDF5Error.library(file: file.path, object: path, "cannot look up link") }
        guard exists > 0 else { return HDF5LinkInfo(kind: .missing, target: nil) }
        var info = H5L_info_t()
        guard H5Lget_info(location, name, &info, scion_H5P_DEFAULT()) >= 0 else {
            throw HDF5Error.library(file: file.path, object: path, "cannot read link information")
        }
        switch info.type {
        case H5L_TYPE_HARD:
            var object = H5O_info_t()
            guard H5Oget_info_by_name2(location, name, &object, scion_H5O_INFO_BASIC(), scion_H5P_DEFAULT()) >= 0 else {
                throw HDF5Error.library(file: file.path, object: path, "cannot read object information")
            }
            switch object.type {
            case H5O_TYPE_GROUP: return HDF5LinkInfo(kind: .group, target: nil)
            case H5O_TYPE_DATASET: return HDF5LinkInfo(kind: .dataset, target: nil)
            case H5O_TYPE_NAMED_DATATYPE: return HDF5LinkInfo(kind: .namedDatatype, target: nil)
            default: return HDF5LinkInfo(kind: .other, target: nil)
            }
        case H5L_TYPE_SOFT:
            let value = linkValue(in: location, name: name, size: info.u.val_size)
            let target = value.map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return HDF5LinkInfo(kind: .softLink, target: target)
        case H5L_TYPE_EXTERNAL:
            let value = linkValue(in: location, name: name, size: info.u.val_size)
            return HDF5LinkInfo(kind: .externalLink, target: value.flatMap(Self.describeExternal))
        default:
            return HDF5LinkInfo(kind: .other, target: nil)
        }
    }

    /// The raw value of a soft or external link, or nil when it is too long or unreadable
    /// (it only decorates error messages).
    private func linkValue(in location: hid_t, name: String, size: Int) -> [UInt8]? {
        guard size > 0, size <= Self.maxLinkValue else { return nil }
        var buffer = [UInt8](repeating: 0, count: size)
        let status = buffer.withUnsafeMutableBytes { H5Lget_val(location, name, $0.baseAddress, size, scion_H5P_DEFAULT()) }
        return status >= 0 ? buffer : nil
    }

    /// Decodes an external link value: one version/flags byte, then the file name and the
    /// object path, each NUL-terminated. Parsed here, within bounds, rather than with
    /// `H5Lunpack_elink_val`, which trusts the value to hold both terminators.
    private static func describeExternal(_ value: [UInt8]) -> String? {
        guard value.count >= 3 else { return nil }
        let fields = value.dropFirst().split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        guard fields.count == 2 else { return nil }
        let file = String(decoding: fields[0], as: UTF8.self)
        let object = String(decoding: fields[1].prefix { $0 != 0 }, as: UTF8.self)
        return file + ":" + object
    }
}
