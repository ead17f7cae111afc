import Foundation

/// Checks an output path before any work is done, so a long run never fails at its end for a reason
/// known at its start: the folder must exist (it is never created silently), the extension must be
/// one the writer knows, the path must not be a folder, and an existing file needs `force`.
package enum OutputCheck {
    /// `extensions` are lower-case without the dot; `what` names the kind of file in messages.
    package static func check(_ path: String, force: Bool, extensions: [String], what: String) throws {
        let url = URL(fileURLWithPath: path)
        let suffix = url.pathExtension.lowercased()
        guard extensions.contains(suffix) else {
            let expected = extensions.map { "." + $0 }.joined(separator: ", ")
            throw ScionError(file: path, suffix.isEmpty ? "has no extension; \(what) must end in \(expected)"
                : "'.\(suffix)' is not an extension Scion writes for \(what) (use \(expected))")
        }
        var isDirectory: ObjCBool = false
        let folder = url.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ScionError(file: path, "folder \(folder) does not exist (create it first)")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw ScionError(file: path, "is a folder, not a file") }
            if !force { throw ScionError(file: path, "already exists; pass --force to replace it") }
        }
    }

    /// A model output: .onnx, .h5 or .keras.
    package static func checkModel(_ path: String, force: Bool) throws {
        try check(path, force: force, extensions: ["onnx", "h5", "hdf5", "keras"], what: "a model")
    }

    /// A folder Scion writes several files into (`scion demo -o DIR`): it may exist; its parent must.
    package static func checkFolder(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ScionError(file: path, "is a file, not a folder") }
            return
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ScionError(file: path, "folder \(parent) does not exist (create it first)")
        }
    }
}
