import Foundation
import FuzzSupport
import ScionKeras
import ScionZip

/// libFuzzer target: bytes as a .keras archive (zip reader, config, the weights' HDF5 image and its
/// walk in a child process), through a file as users hand them over. Every entry is also read both
/// ways through the zip reader alone, since the Keras reader only looks at the three it knows. Any
/// thrown error is a correct answer; a crash, a hang or an unbounded allocation is a bug.
@_cdecl("FuzzKerasArchive_main")
public func fuzzKerasArchiveMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-fuzz-\(getpid()).keras").path
        guard FileManager.default.createFile(atPath: path, contents: Data(fuzzBytes(data, size))) else { return 0 }
        defer { try? FileManager.default.removeItem(atPath: path) }
        if let archive = try? ZipArchive(path: path) {
            for entry in archive.entries {
                _ = try? archive.contents(of: entry, limit: 1 << 20)
                _ = try? archive.storedBytes(of: entry)
            }
        }
        if var graph = try? KerasModelReader.readArchive(at: path) {
            for parameter in graph.parameters.all { _ = try? parameter.storage.bytes(keep: false) }
            try? graph.inferShapes()
        }
        return 0
    }
}
