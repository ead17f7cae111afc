import Foundation
import ScionKeras

/// libFuzzer target: bytes as a .keras archive (zip reader, config, the weights' HDF5 image and its
/// walk in a child process), through a file as users hand them over. Any thrown error is a correct
/// answer; a crash, a hang or an unbounded allocation is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKerasArchive(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-fuzz-\(getpid()).keras").path
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { try? FileManager.default.removeItem(atPath: path) }
    if var graph = try? KerasModelReader.readArchive(at: path) {
        for parameter in graph.parameters.all { _ = try? parameter.storage.bytes(keep: false) }
        try? graph.inferShapes()
    }
    return 0
}

/// The executable's entry (SwiftPM links `main` to `FuzzKerasArchive_main`): hands the arguments to libFuzzer.
@_cdecl("FuzzKerasArchive_main")
public func fuzzKerasArchiveMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzKerasArchive(data ?? UnsafePointer(bitPattern: 1)!, size) }
}

/// libFuzzer's driver (linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
