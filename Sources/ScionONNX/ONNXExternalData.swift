import Foundation
import ScionIR

/// Tensors whose bytes live in a file beside the model (`data_location = EXTERNAL`).
///
/// Reading is lazy and confined: a location must be a relative path that resolves, symbolic links
/// followed, to a regular file inside the model's folder; absolute paths, `..` and links escaping the
/// folder are refused, and the declared range must lie inside the file. Writing streams each tensor into
/// one data file, aligned so that readers may map it.
package enum ONNXExternalData {
    /// Offsets in written data files are multiples of this (onnxruntime maps aligned ranges).
    package static let alignment = 4096

    /// Lazy storage for `length` (or `byteCount`) bytes at `offset` of `location`, checked now.
    package static func source(location: String, offset: Int, length: Int?, folder: String, file: String,
                              byteCount: Int) throws -> TensorStorage {
        let path = try resolve(location, folder: folder, file: file)
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = (attributes?[.size] as? NSNumber)?.intValue, attributes?[.type] as? FileAttributeType == .typeRegular else {
            throw ONNXError(.invalidTensor, file: file, subject: location, "external data is not a regular file")
        }
        if let length, length != byteCount {
            throw ONNXError(.invalidTensor, file: file, subject: location,
                            "external data length \(length) disagrees with the tensor's \(byteCount) bytes")
        }
        guard offset >= 0, byteCount >= 0, offset <= size, byteCount <= size - offset else {
            throw ONNXError(.invalidTensor, file: file, subject: location,
                            "external data range \(offset)..<\(offset + byteCount) lies outside the \(size)-byte file")
        }
        return TensorStorage(source: ExternalFileSource(path: path, offset: offset, byteCount: byteCount))
    }

    /// The real path of `location`, refused unless it stays inside `folder`.
    static func resolve(_ location: String, folder: String, file: String) throws -> String {
        guard !location.isEmpty, !location.hasPrefix("/"), !location.contains("\0") else {
            throw ONNXError(.invalidTensor, file: file, subject: location, "external data must be a relative path inside the model's folder")
        }
        if location.split(separator: "/").contains("..") || location.contains("\\") {
            throw ONNXError(.invalidTensor, file: file, subject: location, "external data may not leave the model's folder ('..')")
        }
        let base = URL(fileURLWithPath: folder).resolvingSymlinksInPath().standardizedFileURL.path
        let target = URL(fileURLWithPath: base).appendingPathComponent(location).resolvingSymlinksInPath().standardizedFileURL.path
        guard target.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
            throw ONNXError(.invalidTensor, file: file, subject: location, "external data resolves outside the model's folder")
        }
        return target
    }

    /// Moves every initializer's bytes into `dataPath` (streamed, one tensor at a time) and points the
    /// tensors at it by `location` (the data file's name, relative to the model).
    package static func write(_ initializers: inout [ONNXTensor], to dataPath: String, location: String, file: String) throws {
        guard FileManager.default.createFile(atPath: dataPath, contents: nil),
              let handle = FileHandle(forWritingAtPath: dataPath) else {
            throw ONNXError(.writeFailed, file: file, subject: location, "cannot create the external data file")
        }
        defer { try? handle.close() }
        var offset = 0
        for index in initializers.indices {
            let bytes: [UInt8]
            switch initializers[index].data {
            case .raw(let raw): bytes = raw
            case .storage(let storage): bytes = try storage.bytes(keep: false)
            case .external, .strings: continue
            }
            let padding = (alignment - offset % alignment) % alignment
            do {
                if padding > 0 { try handle.write(contentsOf: Data(count: padding)) }
                try handle.write(contentsOf: bytes)
            } catch {
                throw ONNXError(.writeFailed, file: file, subject: initializers[index].name, "cannot write external data: \(error)")
            }
            offset += padding
            initializers[index].data = .external(location: location, offset: offset, length: bytes.count)
            offset += bytes.count
        }
        do { try handle.synchronize() } catch {
            throw ONNXError(.writeFailed, file: file, subject: location, "cannot flush external data: \(error)")
        }
    }
}

/// A byte range of a file, read when first asked for.
final class ExternalFileSource: TensorSource {
    let path: String
    let offset: Int
    let byteCount: Int
    var location: String { "\(path)@\(offset)" }

    init(path: String, offset: Int, byteCount: Int) {
        self.path = path; self.offset = offset; self.byteCount = byteCount
    }

    func readBytes() throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ONNXError(.invalidTensor, file: path, "cannot open external data")
        }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: byteCount) ?? Data()
            guard data.count == byteCount else {
                throw ONNXError(.invalidTensor, file: path, "external data ends after \(data.count) of \(byteCount) bytes")
            }
            return [UInt8](data)
        } catch let error as ONNXError {
            throw error
        } catch {
            throw ONNXError(.invalidTensor, file: path, "cannot read external data: \(error)")
        }
    }
}
