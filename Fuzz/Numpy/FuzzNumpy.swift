import Foundation
import Scion
import ScionRuntime

/// libFuzzer target: bytes as an .npy array, and (through a file) as an .npz archive of them. Any
/// thrown error is a correct answer; a crash or an allocation the bytes do not back is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNumpy(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? NumpyFile.decode(bytes, file: "fuzz.npy")
    if bytes.starts(with: [0x50, 0x4B]) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-fuzz-\(getpid()).npz").path
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return 0 }
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try? NumpyArchive.read(path)
    }
    return 0
}

/// The executable's entry (SwiftPM links `main` to `FuzzNumpy_main`): hands the arguments to libFuzzer.
@_cdecl("FuzzNumpy_main")
public func fuzzNumpyMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzNumpy(data ?? UnsafePointer(bitPattern: 1)!, size) }
}

/// libFuzzer's driver (linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
