import Foundation
import FuzzSupport
import Scion
import ScionRuntime

/// libFuzzer target: bytes as an .npy array, and (through a file) as an .npz archive of them. Any
/// thrown error is a correct answer; a crash or an allocation the bytes do not back is a bug.
@_cdecl("FuzzNumpy_main")
public func fuzzNumpyMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        let bytes = Array(fuzzBytes(data, size))
        _ = try? NumpyFile.decode(bytes, file: "fuzz.npy")
        if bytes.starts(with: [0x50, 0x4B]) {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-fuzz-\(getpid()).npz").path
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return 0 }
            defer { try? FileManager.default.removeItem(atPath: path) }
            _ = try? NumpyArchive.read(path)
        }
        return 0
    }
}
