import Foundation
import ScionKeras

/// libFuzzer target: bytes as a Keras model config (config.json / model_config): parsed, built into
/// the IR, shapes inferred. Any thrown error is a correct answer; a crash or a hang is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKerasConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? KerasModelReader.readArchitecture(configJSON: Data(bytes: data, count: size), file: "fuzz.json")
    return 0
}

/// The executable's entry (SwiftPM links `main` to `FuzzKerasConfig_main`): hands the arguments to libFuzzer.
@_cdecl("FuzzKerasConfig_main")
public func fuzzKerasConfigMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzKerasConfig(data ?? UnsafePointer(bitPattern: 1)!, size) }
}

/// libFuzzer's driver (linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
