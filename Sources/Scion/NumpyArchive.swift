import Foundation
import ScionRuntime
import ScionZip

/// NumPy's `.npz`: a zip of `.npy` files, one per array, named `NAME.npy` (what `numpy.savez` writes
/// and `numpy.load` reads, stored or deflated).
public enum NumpyArchive {
    /// The arrays of an `.npz`, by name (without `.npy`), in the archive's order.
    public static func read(_ path: String) throws -> [(name: String, tensor: RuntimeTensor)] {
        do {
            let archive = try ZipArchive(path: path)
            return try archive.entries.filter { $0.name.hasSuffix(".npy") }.map { entry in
                // A declared size is checked against the archive before anything is allocated.
                let bytes = try archive.contents(of: entry, limit: archive.fileSize * 1032 + 1 << 20)
                return (String(entry.name.dropLast(4)), try NumpyFile.decode(bytes, file: "\(path): \(entry.name)"))
            }
        } catch let error as ZipError {
            throw npzError(error, reading: true)
        }
    }

    /// Writes `arrays` as float32 `.npy` entries, stored (`numpy.load` reads them as `numpy.savez` would).
    public static func write(_ arrays: [(name: String, tensor: RuntimeTensor)], to path: String) throws {
        do {
            let writer = try ZipWriter(path: path)
            for (name, tensor) in arrays {
                try writer.addEntry(name: "\(name).npy", bytes: NumpyFile.encode(tensor), compress: false)
            }
            try writer.finish()
        } catch let error as ZipError {
            throw npzError(error, reading: false)
        }
    }

    /// A zip-level problem said about the `.npz`: the file, the entry if there is one, and the zip
    /// layer's reason. A read that fails on the archive as a whole says the file is no `.npz`.
    private static func npzError(_ error: ZipError, reading: Bool) -> ScionError {
        if !error.entry.isEmpty { return ScionError(file: error.file, "entry '\(error.entry)': \(error.reason)") }
        return ScionError(file: error.file, reading ? "is not a NumPy .npz archive: \(error.reason)" : error.reason)
    }
}
